"""Pooled activations at named layers across noise levels."""

import pytest
import torch
from torch import nn

from lowrank.measure import features
from lowrank.measure.features import PooledActivations, features_across_sigma


class TinyNet(nn.Module):
    """A conv net conditioned on sigma, with a block that returns a tuple like a UNet's."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.down = nn.Conv2d(1, 4, 3, padding=1)
        self.mid = nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x, sigma):
        h = torch.tanh(self.down(x)) + sigma.log()[:, None, None, None]
        return (self.mid(h), h)


def _manual(net, x, sigma):
    """Pooled activations computed without hooks."""
    h = torch.tanh(net.down(x)) + sigma.log()[:, None, None, None]
    return net.down(x).mean((2, 3)), net.mid(h).mean((2, 3))


class _Hooked:
    """A denoiser that runs ``call`` and whose blocks are ``network``'s (a HookedDenoiser)."""

    def __init__(self, network, call):
        self.network, self.call = network, call

    def __call__(self, x_t, sigma):
        return self.call(x_t, sigma)


def test_features_are_the_pooled_activations_of_each_layer():
    net = TinyNet()
    x0 = torch.randn(10, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    sigmas = [0.1, 1.0]
    feats = features_across_sigma(net, ["down", "mid"], x0, sigmas, clean=True,
                                  batch_size=4, progress=False)  # fmt: skip
    assert feats["down"].shape == (2, 10, 4) and feats["mid"].shape == (2, 10, 6)
    for s, sigma in enumerate(sigmas):
        down, mid = _manual(net, x0, torch.full((10,), sigma))
        torch.testing.assert_close(feats["down"][s], down.detach(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(feats["mid"][s], mid.detach(), rtol=1e-6, atol=1e-6)
    assert all(not m._forward_hooks for m in net.modules())  # hooks removed


def test_spatial_readouts_are_cell_means_from_the_same_forward_pass():
    """``"mid@2x2"``: the means over the four quadrants of a 4 x 4 map, channel-major; the
    global average beside it is unchanged, and one pass serves both."""
    net = TinyNet()
    calls = []
    counting = _Hooked(net, lambda x, s: calls.append(1) or net(x, s))
    x0 = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    names = ["mid", "mid@2x2", "down@1x4"]
    feats = features_across_sigma(counting, names, x0, [0.3], clean=True, progress=False)
    assert len(calls) == 1 and list(feats) == names
    plain = features_across_sigma(net, ["mid"], x0, [0.3], clean=True, progress=False)["mid"]
    assert torch.equal(feats["mid"], plain)
    h = torch.tanh(net.down(x0)) + torch.full((6,), 0.3).log()[:, None, None, None]
    mid = net.mid(h).detach()  # (6, 6, 4, 4)
    quadrants = mid.reshape(6, 6, 2, 2, 2, 2).mean((3, 5)).flatten(1)  # (B, C * 2 * 2)
    torch.testing.assert_close(feats["mid@2x2"][0], quadrants, rtol=1e-6, atol=1e-6)
    columns = net.down(x0).detach().mean(2)  # a 1 x 4 grid: one cell per column
    assert feats["down@1x4"].shape == (1, 6, 16)
    torch.testing.assert_close(feats["down@1x4"][0], columns.flatten(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name, match",
    [
        ("mid@0x2", "readout 'mid@0x2'"),
        ("mid@2", "readout 'mid@2'"),
        ("mid@axb", "readout 'mid@axb'"),
        ("mid@5x5", "H >= 5"),
        ("nope@2x2", "no layers"),
    ],
)
def test_bad_readouts_are_named(name, match):
    net = TinyNet()
    with pytest.raises(ValueError, match=match):
        features_across_sigma(net, [name], torch.zeros(2, 1, 4, 4), [0.1], progress=False)
    assert all(not m._forward_hooks for m in net.modules())


def test_noisy_features_are_seeded_and_use_the_noise_level():
    net = TinyNet()
    x0 = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(2))
    run = lambda seed: features_across_sigma(  # noqa: E731
        net, ["down"], x0, [0.5, 2.0], batch_size=4, seed=seed, progress=False
    )["down"]
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the spread of the noise's effect grows with sigma: at 2.0 the features move further
    clean = features_across_sigma(net, ["down"], x0, [0.5, 2.0], clean=True,
                                  progress=False)["down"]  # fmt: skip
    assert (a[1] - clean[1]).abs().mean() > 2 * (a[0] - clean[0]).abs().mean()
    assert net.training  # the mode is restored


def test_clear_errors_and_hooks_removed_after_a_failure():
    net = TinyNet()
    with pytest.raises(ValueError, match="no layers \\['nope'\\]"):
        PooledActivations(net, ["nope"])

    def broken(x, sigma):  # a channel count the first conv rejects
        return net(x[:, :0], sigma)

    with pytest.raises(RuntimeError):
        features_across_sigma(_Hooked(net, broken), ["down"], torch.zeros(2, 1, 5, 5), [0.1],
                              progress=False)  # fmt: skip
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        features_across_sigma(net, ["down"], torch.zeros(2, 1, 5, 5), [0.0], progress=False)


def test_noisy_pixels_are_the_inputs_the_network_saw():
    from lowrank.measure.features import noisy_pixels

    flat = nn.Sequential(nn.Flatten())  # its output (B, D) is recorded as it is
    x0 = torch.randn(7, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    sigmas = [0.01, 0.3, 2.0]
    seen = features_across_sigma(_Hooked(flat, lambda x, s: flat(x)), ["0"], x0, sigmas,
                                 batch_size=3, seed=5, progress=False)["0"]  # fmt: skip
    pixels = noisy_pixels(x0, sigmas, batch_size=3, seed=5)
    assert pixels.shape == (3, 7, 9)
    assert torch.equal(pixels, seen)
    # the noise has the level's scale: (x_t - x0) / sigma is standard normal
    ratio = (pixels - x0.flatten(1)) / torch.tensor(sigmas)[:, None, None]
    assert 0.6 < ratio.std().item() < 1.4
    assert not torch.equal(noisy_pixels(x0, sigmas, batch_size=3, seed=6), pixels)


def test_split_items_keeps_the_first_n_items_apart():
    F = {"a": torch.arange(2 * 5 * 3).reshape(2, 5, 3), "b": torch.zeros(2, 5, 1)}
    first, rest = features.split_items(F, 2)
    assert torch.equal(first["a"], F["a"][:, :2]) and torch.equal(rest["a"], F["a"][:, 2:])
    assert first["b"].shape == (2, 2, 1) and rest["b"].shape == (2, 3, 1)
    assert torch.equal(torch.cat([first["a"], rest["a"]], 1), F["a"])  # nothing lost or repeated
    with pytest.raises(ValueError, match="n = 5 leaves no items"):
        features.split_items(F, 5)
    with pytest.raises(ValueError, match="same N items"):
        features.split_items({"a": F["a"], "c": torch.zeros(2, 4, 1)}, 2)
