"""lowrank.measure.distances: principal angles, sliced Wasserstein and Frechet distances against
closed forms."""

import pytest
import torch

from lowrank.measure.distances import (
    block_angles,
    frechet_bootstrap,
    frechet_distance,
    principal_angles,
    sliced_wasserstein,
)
from lowrank.theory.mixtures import MoLRG


def _with_covariance(x: torch.Tensor, mean: torch.Tensor, variances: torch.Tensor):
    """Rows whose sample mean and unbiased covariance are exactly ``mean`` and
    ``diag(variances)`` (whitened, then scaled)."""
    x = x - x.mean(0)
    chol = torch.linalg.cholesky(x.T @ x / (len(x) - 1))
    white = torch.linalg.solve_triangular(chol, x.T, upper=False).T
    return white * variances.sqrt() + mean


def test_block_angles_with_matching_ignore_block_order(molrg_data):
    mix = molrg_data[0]
    shuffled = torch.cat([mix.class_bases[2], mix.class_bases[0], mix.class_bases[1]], 1)
    assert block_angles(shuffled, mix.class_bases).min() == pytest.approx(90)
    torch.testing.assert_close(
        block_angles(shuffled, mix.class_bases, match=True), torch.zeros(3).double(),
        atol=1e-5, rtol=0,
    )  # fmt: skip


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    # commuting covariances: ||mu_a - mu_b||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    gen = torch.Generator().manual_seed(2)
    p = 6
    var_a, var_b = torch.arange(1.0, p + 1).double(), torch.linspace(0.5, 3, p).double()
    mean_b = torch.linspace(-1, 1, p).double()
    a = _with_covariance(torch.randn(3000, p, generator=gen).double(), torch.zeros(p), var_a)
    b = _with_covariance(torch.randn(2000, p, generator=gen).double(), mean_b, var_b)
    exact = (mean_b.square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum()).item()
    assert frechet_distance(a, b) == pytest.approx(exact, rel=1e-6)  # measured: 3e-8
    # a rotation of both sets leaves the distance unchanged (non-diagonal covariances)
    rotation = torch.linalg.qr(torch.randn(p, p, generator=gen, dtype=torch.float64)).Q
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(exact, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


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


def test_frechet_bootstrap_is_the_distance_of_each_resample():
    """Each resample's value equals torchmetrics' FID (frechet_distance) on the same rows, and
    the same seed draws the same rows for two sets of samples (a paired bootstrap)."""
    gen = torch.Generator().manual_seed(3)
    reference = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    samples = 0.5 + 1.3 * torch.randn(120, 6, generator=gen, dtype=torch.float64)
    values = frechet_bootstrap(reference, samples, resamples=60, seed=7)
    rows = torch.randint(0, 120, (60, 120), generator=torch.Generator().manual_seed(7))
    assert values.shape == (60,) and values.dtype == torch.float64
    for r in (0, 17, 59):  # across the chunks of 50
        assert values[r].item() == pytest.approx(
            frechet_distance(reference, samples[rows[r]]), rel=1e-6
        )  # measured: 1e-12
    # the spread is the samples': near the distance on all rows, and not a constant
    full = frechet_distance(reference, samples)
    assert values.std() > 0.01 * full and abs(values.median() - full) < 3 * values.std()
    shifted = frechet_bootstrap(reference, samples + 0.1, resamples=60, seed=7)
    for r in (3, 55):  # the same rows of other samples: the two subtract into a paired bootstrap
        assert shifted[r].item() == pytest.approx(
            frechet_distance(reference, (samples + 0.1)[rows[r]]), rel=1e-6
        )


def test_frechet_bootstrap_names_its_bad_arguments():
    a, b = torch.randn(10, 3), torch.randn(10, 4)
    with pytest.raises(ValueError, match="one width"):
        frechet_bootstrap(a, b)
    with pytest.raises(ValueError, match="resamples"):
        frechet_bootstrap(a, a, resamples=0)
