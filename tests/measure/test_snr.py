"""lowrank.measure.snr: the SNR of Definition 1, exact and estimated, against the paper's tables,
its limits and Monte Carlo."""

import math

import pytest
import torch

from lowrank.book import paper
from lowrank.measure import snr
from lowrank.measure.snr import snr_estimate, snr_exact, theorem1_ratios
from lowrank.theory import closed_forms, schedules
from lowrank.theory.denoisers import LowRankDAE, MixtureDenoiser
from lowrank.theory.mixtures import MoLRG, random_orthonormal

# Table 4 of the paper, orthogonal binary MoLRG (n=50, d=5, delta=0.2), Karras grid from 0.008.
TABLE4_ORTHOGONAL = paper.TABLE4["orthogonal"]


def _subspace_features(N_per_class, p, d, s, tau, seed):
    """Classes in mutually orthogonal d-dim subspaces of R^p (fixed bases): h = U_k a + e,
    a ~ N(0, s^2 I_d), e ~ N(0, tau^2 I_p); ``seed`` draws a and e. Returns features, labels
    and the bases."""
    K = 3
    g = torch.Generator().manual_seed(seed)
    basis = random_orthonormal(p, K * d, 0)
    bases = [basis[:, k * d : (k + 1) * d] for k in range(K)]
    labels = torch.arange(K).repeat_interleave(N_per_class)
    a = s * torch.randn(len(labels), d, generator=g, dtype=torch.float64)
    h = torch.stack([bases[k] @ a[i] for i, k in enumerate(labels.tolist())])
    h = h + tau * torch.randn(h.shape, generator=g, dtype=torch.float64)
    return h, labels, bases


def test_snr_exact_reproduces_table_4_orthogonal():
    sig = schedules.edm_probe_sigmas(start=0.008)
    mix = MoLRG(50, 2, 5, 0.2, seed=0)
    snr_estimate = snr_exact(mix, sig, 400_000, torch.Generator().manual_seed(0))
    snr, se = snr_estimate.value, snr_estimate.stderr
    rows = zip(sig.tolist(), snr.tolist(), se.tolist(), TABLE4_ORTHOGONAL, strict=True)
    for s, ours, err, printed in rows:
        print(f"sigma {s:.3f}: ours {ours:7.3f} +- {err:.3f}  paper {printed:6.2f}")
        assert abs(ours - printed) <= 0.03 * printed


@pytest.mark.parametrize("K, delta", [(2, 0.2), (5, 0.3)])
def test_snr_exact_reaches_its_limits(K, delta):
    limits = closed_forms.snr_limits(K, delta)
    small, large = limits.at_small_sigma, limits.at_large_sigma
    gen = torch.Generator().manual_seed(1)
    snr_estimate = snr_exact(MoLRG(40, K, 4, delta), [1e-4, 1e4], 50_000, gen)
    snr, se = snr_estimate.value, snr_estimate.stderr
    assert abs(snr[0].item() - small) < 5 * se[0].item()
    assert abs(snr[1].item() - large) < 5 * se[1].item()


def test_snr_exact_keeps_dtype_and_shape():
    mix = MoLRG(20, 2, 3, 0.2)
    snr_estimate = snr_exact(mix, torch.tensor([0.1, 1.0]), 1000, torch.Generator().manual_seed(0))
    snr, se = snr_estimate.value, snr_estimate.stderr
    assert snr.dtype == se.dtype == torch.float32 and snr.shape == se.shape == (2,)


def test_stderr_matches_spread_over_replicates():
    mix = MoLRG(20, 3, 3, 0.3)
    gen = torch.Generator().manual_seed(3)
    runs = [snr_exact(mix, [0.4], 3000, gen) for _ in range(40)]
    values = torch.stack([r.value for r in runs]).squeeze()
    mean_se = torch.stack([r.stderr for r in runs]).mean()
    # the sample std of 40 replicates is within about 25% of the truth (chi distribution)
    assert values.std().item() == pytest.approx(mean_se.item(), rel=0.3)


def test_generic_estimator_agrees_with_exact_for_optimal_denoiser():
    mix = MoLRG(60, 3, 4, 0.25, seed=2)
    sig = [0.05, 0.3, 1.5]
    exact_estimate = snr_exact(mix, sig, 60_000, torch.Generator().manual_seed(0))
    exact, se_exact = exact_estimate.value, exact_estimate.stderr
    for den in (MixtureDenoiser(mix), LowRankDAE.from_mixture(mix)):
        est_estimate = snr_estimate(den, mix, sig, 30_000, torch.Generator().manual_seed(1))
        est, se = est_estimate.value, est_estimate.stderr
        assert torch.all((est - exact).abs() <= 5 * (se**2 + se_exact**2).sqrt()), type(den)


def test_generic_estimator_sees_a_wrong_subspace():
    mix = MoLRG(30, 2, 3, 0.2, seed=0)
    wrong = LowRankDAE(30, 2, 3, 0.2, generator=torch.Generator().manual_seed(5))
    snr = snr_estimate(wrong, mix, [0.3], 4000, torch.Generator().manual_seed(0)).value
    exact = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0)).value
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
    total = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0)).value
    rows_estimate = snr_exact(mix, [0.3], 4000, torch.Generator().manual_seed(0), per_class=True)
    rows, se = rows_estimate.value, rows_estimate.stderr
    assert rows.shape == se.shape == (2, 1)
    torch.testing.assert_close(mix.pi @ rows, total)


def test_snr_does_not_depend_on_the_ambient_dimension():
    """The optimal denoiser's SNR is a function of the K d coefficients alone: estimated in
    the ambient space at n = 50 and n = 400 it agrees with the coefficient-space estimator."""
    gen = torch.Generator().manual_seed(7)
    exact_estimate = snr_exact(MoLRG(50, 3, 5, 0.2), [0.3], 60_000, gen)
    exact, exact_se = exact_estimate.value, exact_estimate.stderr
    for n in (50, 400):
        mix = MoLRG(n, 3, 5, 0.2, seed=1)
        ambient_estimate = snr_estimate(MixtureDenoiser(mix), mix, [0.3], 12_000, gen)
        ambient, se = ambient_estimate.value, ambient_estimate.stderr
        gap = (ambient - exact).abs().item()
        assert gap < 4 * math.hypot(se.item(), exact_se.item()), (n, ambient, exact)


def test_snr_matches_the_closed_form_on_subspace_features():
    """E||P_k h||^2 = d (s^2 + tau^2) and E||h - P_k h||^2 = (p - d) tau^2, for every class."""
    p, d, s, tau = 20, 3, 2.0, 0.5
    h, labels, bases = _subspace_features(4000, p, d, s, tau, seed=0)
    expected = d * (s**2 + tau**2) / ((p - d) * tau**2)  # 3 * 4.25 / 4.25 = 3
    value_estimate = snr.snr(h, labels, bases)
    value, se = value_estimate.value, value_estimate.stderr
    assert abs(value.item() - expected) < 4 * se.item(), (value, se, expected)
    ratios_estimate = snr.snr(h, labels, bases, per_class=True)
    ratios, ratio_se = ratios_estimate.value, ratios_estimate.stderr
    assert torch.all((ratios - expected).abs() < 4 * ratio_se)
    # the standard error is the spread of the estimate over independent replicates
    reps = torch.stack(
        [
            snr.snr(*_subspace_features(4000, p, d, s, tau, seed=r)[:2], bases).value
            for r in range(1, 9)
        ]  # fmt: skip
    )
    # 8 replicates: their standard deviation is within about +-25% of the truth (chi with 7
    # degrees of freedom: 5th-95th percentiles 0.62-1.35 of it)
    assert 0.6 < reps.std().item() / se.item() < 1.4, (reps.std(), se)
    # weights: a weighted mean of the class ratios
    weighted = snr.snr(h, labels, bases, weights=torch.tensor([1.0, 0.0, 0.0])).value
    assert weighted.item() == pytest.approx(ratios[0].item())


def test_real_data_snr_recovers_the_class_subspaces():
    """With well-separated low-rank classes the recipe's estimated top-d directions are the
    true ones, so its SNR equals Definition 1 with the true bases on the same normalized,
    centred features."""
    h, labels, bases = _subspace_features(3000, 20, 3, 3.0, 0.05, seed=1)
    value = snr.real_data_snr(h, labels, rank=3).value
    z = h / h.norm(dim=1, keepdim=True)
    z = z - z.mean(0)
    with_truth = snr.snr(z, labels, bases).value
    assert abs(value.item() - with_truth.item()) < 0.01 * with_truth.item()
    assert value.item() > 100  # tau = 0.05: nearly all energy in the class subspace
    with pytest.raises(ValueError, match="rank must lie in"):
        snr.real_data_snr(h, labels, rank=21)


def test_real_data_features_normalize_rows_then_centre_on_the_training_mean():
    gen = torch.Generator().manual_seed(5)
    train = torch.randn(50, 6, generator=gen) + 3
    test = torch.randn(20, 6, generator=gen) - 1
    h_train, h_test = snr.real_data_features(train, test)
    unit_train = train.double() / train.double().norm(dim=1, keepdim=True)
    unit_test = test.double() / test.double().norm(dim=1, keepdim=True)
    torch.testing.assert_close(h_train, unit_train - unit_train.mean(0))
    torch.testing.assert_close(h_test, unit_test - unit_train.mean(0))  # the training mean
    assert h_train.dtype == torch.float64 and h_train.mean(0).abs().max() < 1e-12


@pytest.mark.parametrize(("delta", "sigma"), [(0.2, 0.5), (0.1, 0.63), (0.3, 0.3)])
def test_theorem1_ratios_split_theorem_1_over_the_exact_snr(delta, sigma):
    # against snr_approx over snr_exact, each from its own function and draws
    mix = MoLRG(40, 3, 5, delta)
    gen = torch.Generator().manual_seed(1)
    ratios = theorem1_ratios(mix, sigma, 100_000, gen)
    exact = snr_exact(mix, [sigma], 100_000, gen)
    ratio = (closed_forms.snr_approx(3, 5, delta, [sigma]) / exact.value).item()
    rel_se = (exact.stderr / exact.value).item() + ratios.other_stderr / ratios.other
    assert abs(ratios.theorem1_over_exact / ratio - 1) < 5 * rel_se
    assert ratios.other > 1 > ratios.own  # the other blocks carry the error


def test_theorem1_ratios_each_match_the_posterior_weights():
    # each ratio on its own, against beta = xi + (zeta - xi) w from the posterior weights and the
    # block energies of other draws (the function reads the posterior coordinates instead), with
    # Theorem 1's beta_+ for the own block and beta_- for the others
    K, d, delta, sigma = 3, 5, 0.2, 0.5
    mix = MoLRG(40, K, d, delta)
    gen = torch.Generator().manual_seed(3)
    ratios = theorem1_ratios(mix, sigma, 200_000, gen)
    z = mix.sample_coordinates(torch.zeros(200_000, dtype=torch.long), gen)
    z = z + sigma * torch.randn(z.shape, generator=gen, dtype=torch.float64)
    w = MixtureDenoiser(mix).posterior_coordinates(z, sigma).weights
    energy = z.view(-1, K, d).square().sum(-1)
    s = torch.tensor([sigma], dtype=torch.float64)
    zeta, xi = closed_forms.zeta(s).item(), closed_forms.xi(s, delta).item()
    t1 = closed_forms.confidence_weights(K, closed_forms.logit_gap(d, delta, s))
    beta = xi + (zeta - xi) * w
    own = (beta[:, 0] ** 2 * energy[:, 0]).mean() / (
        (xi + (zeta - xi) * t1.w_plus.item()) ** 2 * d * (1 + sigma**2)
    )
    other = (beta[:, 1:] ** 2 * energy[:, 1:]).mean() / (
        (xi + (zeta - xi) * t1.w_minus.item()) ** 2 * d * (delta**2 + sigma**2)
    )
    assert ratios.own == pytest.approx(own.item(), rel=0.01)
    assert abs(ratios.other - other.item()) < 5 * ratios.other_stderr * 2**0.5


def test_theorem1_ratios_stderr_matches_the_spread_over_seeds():
    mix = MoLRG(40, 3, 5, 0.2)
    draws = [
        theorem1_ratios(mix, 0.5, 20_000, torch.Generator().manual_seed(s)) for s in range(12)
    ]
    spread = torch.tensor([r.other for r in draws], dtype=torch.float64).std().item()
    stderr = sum(r.other_stderr for r in draws) / len(draws)
    assert 0.5 < spread / stderr < 2  # 12 seeds: the sample sd is within 30% of the truth at 95%


def test_theorem1_ratios_vanish_when_the_weights_are_uniform():
    # at sigma -> infinity every posterior weight is 1/K and every shrinkage the same constant,
    # so both replacements are exact
    ratios = theorem1_ratios(MoLRG(40, 3, 5, 0.5), 1e3, 50_000, torch.Generator().manual_seed(2))
    assert abs(ratios.own - 1) < 0.01
    assert abs(ratios.other - 1) < 5 * ratios.other_stderr


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: theorem1_ratios(MoLRG.overlapping(30, 4, 0.2, 30), 0.5, 100), "Assumption 1"),
        (lambda: theorem1_ratios(MoLRG(20, 2, 3, 0.2, pi=[0.7, 0.3]), 0.5, 100), "Assumption 1"),
        (lambda: theorem1_ratios(MoLRG(20, 2, 3, 0.2), 0.0, 100), "sigma"),
        (lambda: theorem1_ratios(MoLRG(20, 2, 3, 0.2), 0.5, 1), "num_samples"),
    ],
)
def test_theorem1_ratios_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
