import math

import pytest
import torch

from lowrank import (
    LowRankDAE,
    MixtureDenoiser,
    MoLRG,
    paper,
    schedules,
    snr_estimate,
    snr_exact,
    theory,
)
from lowrank.metrics import block_angles, principal_angles, sliced_wasserstein
from lowrank.probes import logistic_probe, projection_classifier

# Table 4 of the paper, orthogonal binary MoLRG (n=50, d=5, delta=0.2), Karras grid from 0.008.
TABLE4_ORTHOGONAL = paper.TABLE4["orthogonal"]


def test_snr_exact_reproduces_table_4_orthogonal():
    sig = schedules.edm_probe_sigmas(start=0.008)
    mix = MoLRG(50, 2, 5, 0.2, seed=0)
    snr, se = snr_exact(mix, sig, 400_000, torch.Generator().manual_seed(0))
    rows = zip(sig.tolist(), snr.tolist(), se.tolist(), TABLE4_ORTHOGONAL, strict=True)
    for s, ours, err, printed in rows:
        print(f"sigma {s:.3f}: ours {ours:7.3f} +- {err:.3f}  paper {printed:6.2f}")
        assert abs(ours - printed) <= 0.03 * printed


@pytest.mark.parametrize("K, delta", [(2, 0.2), (5, 0.3)])
def test_snr_exact_reaches_its_limits(K, delta):
    small, large = theory.snr_limits(K, delta)
    gen = torch.Generator().manual_seed(1)
    snr, se = snr_exact(MoLRG(40, K, 4, delta), [1e-4, 1e4], 50_000, gen)
    assert abs(snr[0].item() - small) < 5 * se[0].item()
    assert abs(snr[1].item() - large) < 5 * se[1].item()


def test_snr_exact_keeps_dtype_and_shape():
    mix = MoLRG(20, 2, 3, 0.2)
    snr, se = snr_exact(mix, torch.tensor([0.1, 1.0]), 1000, torch.Generator().manual_seed(0))
    assert snr.dtype == se.dtype == torch.float32 and snr.shape == se.shape == (2,)


def test_stderr_matches_spread_over_replicates():
    mix = MoLRG(20, 3, 3, 0.3)
    gen = torch.Generator().manual_seed(3)
    runs = [snr_exact(mix, [0.4], 3000, gen) for _ in range(40)]
    values = torch.stack([r[0] for r in runs]).squeeze()
    mean_se = torch.stack([r[1] for r in runs]).mean()
    # the sample std of 40 replicates is within about 25% of the truth (chi distribution)
    assert values.std().item() == pytest.approx(mean_se.item(), rel=0.3)


def test_generic_estimator_agrees_with_exact_for_optimal_denoiser():
    mix = MoLRG(60, 3, 4, 0.25, seed=2)
    sig = [0.05, 0.3, 1.5]
    exact, se_exact = snr_exact(mix, sig, 60_000, torch.Generator().manual_seed(0))
    for den in (MixtureDenoiser(mix), LowRankDAE.from_mixture(mix)):
        est, se = snr_estimate(den, mix, sig, 30_000, torch.Generator().manual_seed(1))
        assert torch.all((est - exact).abs() <= 5 * (se**2 + se_exact**2).sqrt()), type(den)


def test_generic_estimator_sees_a_wrong_subspace():
    mix = MoLRG(30, 2, 3, 0.2, seed=0)
    wrong = LowRankDAE(30, 2, 3, 0.2, generator=torch.Generator().manual_seed(5))
    snr, _ = snr_estimate(wrong, mix, [0.3], 4000, torch.Generator().manual_seed(0))
    exact, _ = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0))
    assert snr.item() < 0.2 * exact.item()


def test_clear_errors():
    mix = MoLRG(20, 2, 3, 0.2)
    with pytest.raises(ValueError, match="2 per class"):
        snr_exact(mix, [0.1], 3)
    with pytest.raises(ValueError, match="> 0"):
        snr_exact(mix, [0.1, -0.2], 100)
    with pytest.raises(ValueError, match="1-D"):
        snr_exact(mix, torch.ones(2, 2), 100)


def test_per_class_snr_averages_to_the_total():
    mix = MoLRG(20, 2, 3, 0.2, pi=[0.8, 0.2])
    total, _ = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0))
    rows, se = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0), per_class=True)
    assert rows.shape == se.shape == (2, 1)
    torch.testing.assert_close(mix.pi @ rows, total)


def test_logistic_probe_separates_and_reports_per_test_set():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(600, 4, generator=g)
    y = (X[:, 0] + 0.1 * X[:, 1] > 0).long()
    Xt = torch.randn(400, 4, generator=g)
    yt = (Xt[:, 0] + 0.1 * Xt[:, 1] > 0).long()
    acc = logistic_probe(X, y, [Xt, Xt[:200]], [yt, 1 - yt[:200]])
    assert acc.shape == (2,) and acc[0] > 0.97 and acc[1] < 0.03


def test_projection_classifier_uses_class_subspaces():
    mix = MoLRG(30, 3, 2, 0.1, seed=1)
    x0, y = mix.sample(3000, torch.Generator().manual_seed(0))
    pred = projection_classifier(x0[:2000], y[:2000], x0[2000:], rank=2)
    assert (pred == y[2000:]).double().mean() > 0.95
    with pytest.raises(ValueError, match="rank"):
        projection_classifier(x0, y, x0, rank=0)


def test_principal_angles():
    e = torch.eye(4, dtype=torch.float64)
    A = e[:, :2]
    B = torch.stack([e[:, 0], (e[:, 1] + e[:, 2]) / 2**0.5], 1)
    torch.testing.assert_close(principal_angles(A, B), torch.tensor([0.0, 45.0]).double())


def test_block_angles_match_blocks_to_classes_in_order():
    mix = MoLRG(20, 3, 2, 0.2, seed=0)
    torch.testing.assert_close(block_angles(mix.U, mix.class_bases), torch.zeros(3).double(),
                               atol=1e-5, rtol=0)  # fmt: skip
    swapped = torch.cat([mix.class_bases[1], mix.class_bases[0], mix.class_bases[2]], 1)
    angles = block_angles(swapped, mix.class_bases)
    assert angles[0] == pytest.approx(90) and angles[1] == pytest.approx(90)
    assert angles[2] == pytest.approx(0, abs=1e-5)
    with pytest.raises(ValueError, match="columns"):
        block_angles(mix.U[:, :5], mix.class_bases)


def test_snr_does_not_depend_on_the_ambient_dimension():
    """The optimal denoiser's SNR is a function of the K d coefficients alone: estimated in
    the ambient space at n = 50 and n = 400 it agrees with the coefficient-space estimator."""
    gen = torch.Generator().manual_seed(7)
    exact, exact_se = snr_exact(MoLRG(50, 3, 5, 0.2), [0.3], 60_000, gen)
    for n in (50, 400):
        mix = MoLRG(n, 3, 5, 0.2, seed=1)
        ambient, se = snr_estimate(MixtureDenoiser(mix), mix, [0.3], 12_000, gen)
        gap = (ambient - exact).abs().item()
        assert gap < 4 * math.hypot(se.item(), exact_se.item()), (n, ambient, exact)


def test_sliced_wasserstein_of_a_shift_is_the_mean_squared_projected_shift():
    """Y = X + c with N = M = quantiles: every projection matches sorted samples exactly, so
    SW^2 = mean over directions of (theta . c)^2, with the same directions drawn by hand."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 5, generator=g, dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    value = sliced_wasserstein(X, X + c, 64, torch.Generator().manual_seed(7), 256)
    theta = torch.randn(5, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    theta = theta / theta.norm(dim=0)
    assert value == pytest.approx((c @ theta).square().mean().item(), rel=1e-12)
    assert sliced_wasserstein(X, X[torch.randperm(256, generator=g)], 16, g, 256) < 1e-24


def test_sliced_wasserstein_in_one_dimension_is_the_sorted_matching():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 1, generator=g), 2 * torch.rand(300, 1, generator=g)
    exact = (x.double().sort(0).values - y.double().sort(0).values).square().mean().item()
    assert sliced_wasserstein(x, y, 3, g, 300) == pytest.approx(exact, rel=1e-12)


def test_sliced_wasserstein_of_two_isotropic_gaussians():
    """Same isotropic covariance: SW_2^2 = |mu_X - mu_Y|^2 / p (the expectation over directions
    of (theta . dmu)^2), up to sampling error; unequal sample sizes go through quantiles."""
    p = 8
    g = torch.Generator().manual_seed(2)
    mu = torch.zeros(p, dtype=torch.float64)
    mu[0], mu[3] = 2.0, -2.0
    X = torch.randn(20_000, p, generator=g, dtype=torch.float64)
    Y = mu + torch.randn(15_000, p, generator=g, dtype=torch.float64)
    value = sliced_wasserstein(X, Y, 2000, g)
    assert value == pytest.approx(mu.square().sum().item() / p, rel=0.05)  # 1.0
    with pytest.raises(ValueError, match="X and Y must be"):
        sliced_wasserstein(X, Y[:, :3])
