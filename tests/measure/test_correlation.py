"""Spearman's correlation, its bootstrap interval and its exact permutation p-value, against
the textbook formula, a hand-computed tie case and scipy's exact permutation test."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

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


@pytest.mark.parametrize("seed", range(3))
def test_rank_correlation_p_enumerates_every_pairing_as_scipy_does(seed):
    gen = np.random.default_rng(seed)
    x = gen.normal(size=7)
    y = 0.6 * x + gen.normal(size=7)
    if seed == 2:
        y[:3] = 1.0  # ties
    exact = scipy_stats.permutation_test(
        (y,), lambda v: scipy_stats.spearmanr(x, v).statistic, permutation_type="pairings",
        n_resamples=np.inf, alternative="two-sided",
    )  # fmt: skip
    assert correlation.rank_correlation_p(x, y) == pytest.approx(exact.pvalue, abs=1e-12)


def test_a_perfect_rank_order_of_8_has_p_2_over_8_factorial():
    x = torch.arange(8.0)
    assert correlation.rank_correlation_p(x, x**3) == pytest.approx(2 / math.factorial(8))
    with pytest.raises(ValueError, match="all its values tied"):
        correlation.rank_correlation_p([1.0, 1, 1], [1.0, 2, 3])


def test_rank_correlation_p_with_ties_on_both_sides_matches_scipy():
    x = np.array([1.0, 2, 2, 3, 4, 4])
    y = np.array([2.0, 1, 3, 3, 5, 4])
    exact = scipy_stats.permutation_test(
        (y,), lambda v: scipy_stats.spearmanr(x, v).statistic, permutation_type="pairings",
        n_resamples=np.inf, alternative="two-sided",
    )  # fmt: skip
    assert correlation.rank_correlation_p(x, y) == pytest.approx(exact.pvalue, abs=1e-12)


def test_rank_correlation_p_beyond_9_pairs_is_a_monte_carlo_p_within_its_error():
    """14 pairs: against an independent numpy Monte Carlo of 200,000 random pairings, within 5
    Monte Carlo errors of the two estimates combined."""
    gen = np.random.default_rng(5)
    x = gen.normal(size=14)
    y = 0.4 * x + gen.normal(size=14)
    rx, ry = scipy_stats.rankdata(x), scipy_stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    observed = abs(rx @ ry)
    draws = np.stack([gen.permutation(ry) for _ in range(200_000)])
    reference = np.mean(np.abs(draws @ rx) >= observed - 1e-9)
    ours = correlation.rank_correlation_p(x, y, resamples=20_000, seed=1)
    error = math.sqrt(reference * (1 - reference) * (1 / 20_000 + 1 / 200_000))
    assert 0.01 < reference < 0.5  # a p where the comparison means something
    assert abs(ours - reference) < 5 * error
    assert ours == correlation.rank_correlation_p(x, y, resamples=20_000, seed=1)  # seeded


def test_a_perfect_order_of_12_has_the_smallest_monte_carlo_p():
    x = torch.arange(12.0)
    # no random pairing of 12 reaches |rho| = 1 but with chance 2/12! (4e-9 per draw)
    assert correlation.rank_correlation_p(x, x.exp(), resamples=999) == pytest.approx(1 / 1000)
    assert correlation.smallest_p(12, resamples=999) == pytest.approx(1 / 1000)
    assert correlation.smallest_p(4) == pytest.approx(1 / 12)  # no 4-point test reaches 0.05
    assert correlation.smallest_p(8) == pytest.approx(2 / math.factorial(8))
    with pytest.raises(ValueError, match="at least 3"):
        correlation.smallest_p(2)


def test_spearman_is_scipys_with_ties_and_nan_when_all_tied():
    gen = np.random.default_rng(2)
    x, y = gen.normal(size=11), gen.normal(size=11)
    y[:4] = 0.5  # ties
    assert correlation.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y)[0], abs=1e-12)
    assert math.isnan(correlation.spearman([1.0, 2, 3], [4.0, 4, 4]))
    with pytest.raises(ValueError, match=">= 3 values"):
        correlation.spearman([1.0, 2], [1.0, 2])
