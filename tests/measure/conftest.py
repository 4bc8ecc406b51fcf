"""Fixtures of the measurement layer's tests."""

import pytest
import torch


def _layers(gen, N, signal):
    """Features of two 'layers' at 3 noise levels: 'signal' carries the class in one-hot
    directions with the given strengths, 'noise' does not."""
    y = torch.arange(N) % 10
    onehot = torch.nn.functional.one_hot(y, 10).float()
    signal_f = torch.stack([s * onehot + torch.randn(N, 10, generator=gen) for s in signal])
    noise_f = torch.randn(len(signal), N, 10, generator=gen)
    return {"noise": noise_f, "signal": signal_f}, y  # the right answer is not the first key


@pytest.fixture
def layer_features():
    """``layer_features(gen, N, signal)``: features of two layers at 3 levels and labels."""
    return _layers


def _views(levels, N, p, noise, seed):
    """One class signal seen at ``levels`` views, each with its own independent noise: the
    views' errors are independent, so averaging their probes' logits should beat each alone."""
    g = torch.Generator().manual_seed(seed)
    K = 4
    labels = torch.arange(N) % K
    means = 1.0 * torch.randn(K, p, generator=g, dtype=torch.float64)
    return [
        means[labels] + noise * torch.randn(N, p, generator=g, dtype=torch.float64)
        for _ in range(levels)
    ], labels


@pytest.fixture
def noisy_views():
    """``noisy_views(levels, N, p, noise, seed)``: one class signal at ``levels`` views with
    independent noise, and the labels."""
    return _views
