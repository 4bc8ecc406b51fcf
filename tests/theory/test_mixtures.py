import math

import pytest
import torch

from lowrank.theory.mixtures import LowRankMixture, MoLRG, random_orthonormal


def test_molrg_bases_are_orthonormal_and_mutually_orthogonal():
    mix = MoLRG(n=40, K=3, d=4, delta=0.3, seed=2)
    U = mix.U
    torch.testing.assert_close(U.T @ U, torch.eye(12, dtype=torch.float64), atol=1e-13, rtol=0)
    # the union basis starts with the class bases, so h = W^T x_hat is the paper's D U^T x_t
    torch.testing.assert_close(mix.W, U, atol=1e-13, rtol=0)


def test_molrg_covariance_is_assumption_1():
    mix = MoLRG(n=20, K=3, d=2, delta=0.4, seed=0)
    U = mix.class_bases
    for k in range(3):
        others = torch.cat([U[l] for l in range(3) if l != k], 1)
        expected = U[k] @ U[k].T + 0.16 * others @ others.T
        torch.testing.assert_close(mix.covariance(k), expected, atol=1e-13, rtol=0)


def test_sample_covariance_matches_analytic(gen):
    mix = MoLRG(n=12, K=2, d=3, delta=0.5, pi=[0.7, 0.3], seed=1)
    N = 200_000
    x0, y = mix.sample(N, gen)
    assert x0.shape == (N, 12) and y.shape == (N,)
    # label frequencies within 5 binomial standard errors of pi
    assert abs((y == 0).double().mean().item() - 0.7) < 5 * math.sqrt(0.21 / N)
    for k in range(2):
        xk = x0[y == k]
        emp = xk.T @ xk / xk.shape[0]
        S = mix.covariance(k)
        # each entry's standard error: sqrt((S_ii S_jj + S_ij^2) / N_k) for a zero-mean Gaussian
        se = ((torch.outer(S.diagonal(), S.diagonal()) + S**2) / xk.shape[0]).sqrt()
        assert torch.all((emp - S).abs() <= 5 * se + 1e-12)


def test_sampling_is_seeded():
    mix = MoLRG(n=10, K=2, d=2, delta=0.2)
    a = mix.sample(5, torch.Generator().manual_seed(7))[0]
    b = mix.sample(5, torch.Generator().manual_seed(7))[0]
    assert torch.equal(a, b)


def test_overlapping_principal_angles():
    mix = MoLRG.overlapping(n=30, d=4, delta=0.2, angle_deg=30, seed=0)
    U0, U1 = mix.class_bases
    cosines = torch.linalg.svdvals(U0.T @ U1)
    torch.testing.assert_close(cosines, torch.full((4,), math.cos(math.radians(30))).double())
    assert mix.m == 8
    for V in mix.bases:  # each class's full basis [U_k, Ut_k] is orthonormal
        torch.testing.assert_close(V.T @ V, torch.eye(8, dtype=torch.float64))


def test_unequal_ranks_and_separated_means():
    basis = random_orthonormal(30, 12, 5)
    mix = MoLRG.from_bases([basis[:, :10], basis[:, 10:]], delta=0.2, pi=[0.8, 0.2])
    assert mix.d == [10, 2] and mix.ranks == [12, 12]
    sep = MoLRG.separated(n=20, K=3, d=2, delta=0.2, separation=4.0, seed=0)
    torch.testing.assert_close(sep.means.norm(dim=1), torch.full((3,), 4.0).double())
    assert torch.allclose(sep.means @ sep.U, torch.zeros(3, 6, dtype=torch.float64), atol=1e-12)


def test_mixture_covariance_of_separated_clusters():
    mix = MoLRG.separated(n=12, K=2, d=2, delta=0.3, separation=2.0, pi=[0.6, 0.4], seed=0)
    x0, _ = mix.sample(100_000, torch.Generator().manual_seed(0))
    emp = torch.cov(x0.T)
    # Each entry of the sample covariance is a mean of products (x_i - m_i)(x_j - m_j); its
    # standard error comes from the spread of those products. Over the 78 distinct entries,
    # |z| > 5 has probability about 78 * 5.7e-7 = 4e-5 when the covariance is right.
    centred = x0 - x0.mean(0)
    products = centred[:, :, None] * centred[:, None, :]
    stderr = products.std(0) / math.sqrt(len(x0))
    z = (emp - mix.mixture_covariance()) / stderr.clamp_min(1e-12)
    assert z.abs().max() < 5, z.abs().max()


def test_clear_errors():
    with pytest.raises(ValueError, match="delta"):
        MoLRG(10, 2, 2, delta=1.0)
    with pytest.raises(ValueError, match="n >= K"):
        MoLRG(5, 3, 2, delta=0.2)
    with pytest.raises(ValueError, match="orthonormal"):
        MoLRG.from_bases([torch.ones(6, 2), torch.eye(6)[:, :2]], delta=0.2)
    with pytest.raises(ValueError, match="pi"):
        MoLRG(10, 2, 2, delta=0.2, pi=[0.5, 0.6])
    with pytest.raises(ValueError, match="variances"):
        LowRankMixture(None, None, [torch.eye(4)[:, :2]], [torch.tensor([1.0, -1.0])])
    with pytest.raises(ValueError, match="angle"):
        MoLRG.overlapping(10, 2, 0.2, angle_deg=0)


def test_fit_recovers_class_statistics():
    from lowrank.theory.mixtures import LowRankMixture

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(90, 6, generator=gen, dtype=torch.float64)
    labels = torch.arange(90) % 3
    labels[:6] = 0  # unequal counts: 34, 28, 28
    mix = LowRankMixture.fit(x, labels, rank=2)
    counts = torch.bincount(labels).double()
    assert torch.allclose(mix.pi, counts / 90, atol=0, rtol=1e-15)
    for k in range(3):
        Xk = x[labels == k]
        torch.testing.assert_close(mix.means[k], Xk.mean(0))
        # brute force: eigenpairs of the class covariance (1/N_k normalization)
        cov = (Xk - Xk.mean(0)).T @ (Xk - Xk.mean(0)) / len(Xk)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        torch.testing.assert_close(mix.variances[k], eigenvalues.flip(0)[:2])
        top = eigenvectors[:, -2:]
        torch.testing.assert_close(mix.bases[k] @ mix.bases[k].T, top @ top.T)
    with pytest.raises(ValueError, match="rank must be below every class count"):
        LowRankMixture.fit(x[:10], labels[:10], rank=4)


def test_coordinates_refuse_labels_outside_the_classes_and_latents_of_another_shape():
    mix = MoLRG(n=6, K=2, d=2, delta=0.3, seed=0)
    with pytest.raises(ValueError, match="y"):
        mix.coordinates(torch.tensor([0, 7]), torch.zeros(2, mix.m))
    with pytest.raises(ValueError, match=r"latents must be \(2, 4\)"):
        mix.coordinates(torch.tensor([0, 1]), torch.zeros(2, 3))
