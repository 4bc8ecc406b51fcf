"""The ICR against scipy's generalized symmetric eigensolver on covariances written out by hand,
the covariance identity, a population value, and the MoLRG's views."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from lowrank.measure.icr import icr, icr_across_sigma, icr_floor, icr_interval, molrg_views
from lowrank.theory.mixtures import MoLRG
from tests.bad_input_cases import check_case

# Item-level (A) and view-level (B) covariances of a Gaussian model h_vi = s_i + xi_vi.
A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
B = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)


def _views(V: int, N: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(A).T
    return s + torch.randn(V, N, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(B).T


def test_icr_matches_scipy_on_covariances_written_out_by_hand():
    h = _views(V=5, N=40, seed=1).numpy()
    V, N, p = h.shape
    s = h.mean(0)
    sigma_s = sum(np.outer(s[i] - s.mean(0), s[i] - s.mean(0)) for i in range(N)) / N
    sigma_xi = sum(np.outer(h[v, i] - s[i], h[v, i] - s[i]) for v in range(V) for i in range(N))
    sigma_xi = sigma_xi / (N * V)
    tau = 0.05
    lam = scipy.linalg.eigh(sigma_s, sigma_xi + tau * np.eye(p), eigvals_only=True)
    result = icr(torch.from_numpy(h), tau)
    assert result.tau == tau
    np.testing.assert_allclose(result.eigenvalues.numpy(), lam, rtol=1e-10)
    assert result.value == pytest.approx(1 / (1 + lam.mean()), rel=1e-12)
    # the identity: the two parts add up to the covariance of all V N vectors (1/(V N))
    total = np.cov(h.reshape(-1, p).T, bias=True)
    np.testing.assert_allclose((result.sigma_s + result.sigma_xi).numpy(), total, atol=1e-12)
    np.testing.assert_allclose(result.sigma_s.numpy(), sigma_s, atol=1e-12)


def test_icr_is_close_to_its_population_value_and_its_interval_covers_it():
    """With ``V`` views, the sample covariances estimate ``A + B / V`` (the item means keep a
    share of the view noise) and ``B (V - 1) / V``. Over 30 seeds at N = 4000 the estimate sat
    0.04 of its spread (sd 0.0036) from this value; 5 spreads are allowed. A view-level
    normalization of 1/N instead of 1/(N V) moves it by 0.19."""
    V = 4
    lam = scipy.linalg.eigh((A + B / V).numpy(), (B * (V - 1) / V).numpy(), eigvals_only=True)
    population = 1 / (1 + lam.mean())
    h = _views(V, N=4000, seed=2)
    assert icr(h, 0.0).value == pytest.approx(population, abs=5 * 0.0036)
    interval = icr_interval(h, 0.0, resamples=200, seed=3)
    assert interval.low < population < interval.high and interval.level == 0.95
    assert interval.high - interval.low < 8 * 0.0036


def test_relative_ridge_and_invariances():
    h = _views(V=3, N=200, seed=4)
    p = h.shape[2]
    mean_variance = torch.cov(h.reshape(-1, p).T, correction=0).trace().item() / p
    relative = icr(h, 1e-2, relative=True)
    assert relative.tau == pytest.approx(1e-2 * mean_variance, rel=1e-12)
    # a relative ridge makes the ICR scale-free; with no ridge any invertible map leaves it
    assert icr(7.0 * h, 1e-2, relative=True).value == pytest.approx(relative.value, rel=1e-10)
    M = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    assert icr(h @ M.T, 0.0).value == pytest.approx(icr(h, 0.0).value, rel=1e-9)
    # a larger ridge shrinks every eigenvalue, so the ratio can only grow
    assert icr(h, 1.0).value > icr(h, 0.1).value > icr(h, 0.0).value


def test_views_that_do_not_differ_sit_at_the_ridges_floor():
    # Sigma_xi = 0: whitening by tau * tr(Sigma_s) / p leaves eigenvalues whose mean is 1 / tau
    s = _views(V=1, N=50, seed=3)[0]
    same = s.expand(4, -1, -1)  # four identical views of every item
    for tau in (1e-3, 0.5):
        assert icr(same, tau, relative=True).value == pytest.approx(icr_floor(tau), rel=1e-12)
        assert icr_floor(tau) == pytest.approx(1 / (1 + 1 / tau), rel=1e-15)
    assert icr(_views(V=4, N=50, seed=3), 1e-3, relative=True).value > icr_floor(1e-3)


def test_molrg_views_keep_the_class_coordinates_and_redraw_the_rest():
    """Orthogonal MoLRG, coordinates [U_0, U_1, U_2]: across views an item's own block varies
    only by the diffusion noise (variance sigma^2), the other blocks by delta^2 + sigma^2."""
    mix = MoLRG(n=20, K=3, d=2, delta=0.3, seed=0)
    g = torch.Generator().manual_seed(5)
    y = torch.tensor([0, 1, 2])
    latents = torch.randn(3, mix.m, generator=g, dtype=torch.float64)
    sigma, V = 0.1, 4000
    z = molrg_views(mix, y, latents, sigma, V, g)
    assert z.shape == (V, 3, mix.m)
    for i, k in enumerate(y.tolist()):
        own = slice(2 * k, 2 * k + 2)
        others = [j for j in range(mix.m) if not own.start <= j < own.stop]
        clean_own = mix.coordinates(y[i : i + 1], latents[i : i + 1])[0, own]
        # the view mean of the own block is the item's a; 5 standard errors
        err = (z[:, i, own].mean(0) - clean_own).abs().max().item()
        assert err < 5 * sigma / math.sqrt(V)
        var_own = z[:, i, own].var(0)
        var_other = z[:, i, others].var(0)
        # sample variances over 4000 views: relative sd sqrt(2 / V) = 2.2%; 5 of them
        assert torch.allclose(var_own, torch.full_like(var_own, sigma**2), rtol=0.12)
        assert torch.allclose(var_other, torch.full_like(var_other, 0.3**2 + sigma**2), rtol=0.12)


class _Pass(nn.Module):
    """A network whose only block passes x_t through: on 1 x 1 images its pooled feature is
    x_t itself, so the ICR over noise draws has a closed form."""

    def __init__(self):
        super().__init__()
        self.block = nn.Identity()

    def forward(self, x_t, sigma):
        return self.block(x_t)


def test_icr_across_sigma_of_the_noisy_input_meets_its_population_value():
    """Items x0 ~ N(0, A), views x0 + sigma n: Sigma_s = A + sigma^2 / V, Sigma_xi =
    sigma^2 (V - 1) / V, the ridge tau tr(A + sigma^2) / p. 4000 items: 5 spreads of the
    estimate measured above (0.0036 at N = 4000 for a ratio near 0.3)."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(4000, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(A).T
    x0 = x0.float()[:, :, None, None]
    V, tau, sigmas = 4, 1e-3, [0.5, 2.0]
    curves = icr_across_sigma(_Pass(), ["block"], x0, sigmas, views=V, tau=tau, resamples=20)
    curve = curves["block"]
    for s, value in zip(sigmas, curve.value.tolist(), strict=True):
        eye = torch.eye(3, dtype=torch.float64)
        ridge = tau * (A + s**2 * eye).trace().item() / 3
        lam = scipy.linalg.eigh(
            (A + s**2 / V * eye).numpy(), (s**2 * (V - 1) / V * eye + ridge * eye).numpy(),
            eigvals_only=True,
        )  # fmt: skip
        assert value == pytest.approx(1 / (1 + lam.mean()), abs=5 * 0.0036)
    assert bool(torch.all((curve.low <= curve.value) & (curve.value <= curve.high)))
    assert curve.value[1] > curve.value[0]  # more noise, more contamination


BAD_INPUTS = {
    "views of two dimensions": (lambda t: icr(torch.zeros(4, 3), 0.1), (ValueError, "(V, N, p)")),
    "one view": (lambda t: icr(torch.zeros(1, 5, 2), 0.1), (ValueError, "V >= 2")),
    "a NaN feature": (
        lambda t: icr(torch.full((2, 3, 2), math.nan), 0.1),
        (ValueError, "finite"),
    ),
    "negative tau": (lambda t: icr(_views(2, 10, 0), -1.0), (ValueError, "tau")),
    "no ridge and a shared feature": (
        lambda t: icr(torch.cat([_views(2, 10, 0), torch.ones(2, 10, 1)], 2), 0.0),
        (ValueError, "give tau > 0"),
    ),
    "interval at level 1": (
        lambda t: icr_interval(_views(2, 10, 0), 0.1, level=1.0),
        (ValueError, "level"),
    ),
    "views of a mixture that is not a MoLRG": (
        lambda t: molrg_views(
            object(), torch.zeros(2, dtype=torch.long), torch.zeros(2, 2), 0.1, 2
        ),
        (TypeError, "MoLRG"),
    ),
    "views with latents of the wrong width": (
        lambda t: molrg_views(
            MoLRG(n=6, K=2, d=2, delta=0.3),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 3),
            0.1,
            2,
        ),
        (ValueError, "latents must be (2, 4)"),
    ),
    "a negative tau, refused before any forward pass": (
        lambda t: icr_across_sigma(_Pass(), ["block"], torch.zeros(4, 2, 1, 1), [0.1], tau=-1.0),
        (ValueError, "tau"),
    ),
    "one noise draw per image": (
        lambda t: icr_across_sigma(_Pass(), ["block"], torch.zeros(4, 2, 1, 1), [0.1], views=1),
        (ValueError, "views"),
    ),
    "a floor without a ridge": (lambda t: icr_floor(0.0), (ValueError, "tau")),
    "one view of a MoLRG": (
        lambda t: molrg_views(
            MoLRG(n=6, K=2, d=2, delta=0.3),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 4),
            0.1,
            1,
        ),
        (ValueError, "views"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUTS[name], tmp_path)


def test_icr_is_served_at_the_top_of_the_package():
    import lowrank  # the attribute is resolved lazily, on first use

    h = _views(V=3, N=50, seed=6)
    assert lowrank.icr is icr and lowrank.icr(h, 0.1).value == icr(h, 0.1).value
    with pytest.raises(AttributeError, match="no attribute 'icx'"):
        lowrank.icx  # noqa: B018
