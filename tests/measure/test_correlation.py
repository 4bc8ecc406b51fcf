"""Memorization and generalization scores against brute force and closed forms; the cached
classifier whose embedding they use."""

import pytest
import torch

from lowrank.measure import correlation


def test_rank_correlation_matches_spearmans_formula_and_handles_ties():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(30, generator=gen, dtype=torch.float64)
    y = x + 0.8 * torch.randn(30, generator=gen, dtype=torch.float64)
    rank = lambda v: v.argsort().argsort().double()  # noqa: E731 (no ties here)
    d = rank(x) - rank(y)
    formula = 1 - 6 * d.square().sum().item() / (30 * (30**2 - 1))
    result = correlation.rank_correlation(x, y, resamples=500)
    rho, low, high = result.rho, result.low, result.high
    assert (result.level, result.resamples) == (0.95, 500)
    assert rho == pytest.approx(formula, abs=1e-12)
    assert low < rho < high and -1 <= low and high <= 1
    # monotone maps leave it unchanged; reversing one side flips its sign
    assert correlation.rank_correlation(x.exp(), y**3).rho == pytest.approx(rho, abs=1e-12)
    assert correlation.rank_correlation(x, -y).rho == pytest.approx(-rho, abs=1e-12)
    # ties: average ranks, as scipy.stats.spearmanr (hand-computed: ranks 1, 2.5, 2.5, 4)
    tied = correlation.rank_correlation(
        [1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], resamples=10
    ).rho
    a = torch.tensor([1, 2.5, 2.5, 4], dtype=torch.float64)
    b = torch.tensor([1.0, 2, 3, 4], dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    assert tied == pytest.approx(((a * b).sum() / (a.norm() * b.norm())).item(), abs=1e-12)
