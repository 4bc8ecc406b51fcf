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
    with pytest.raises(ValueError, match="3 to 9 values"):
        correlation.rank_correlation_p(torch.arange(10.0), torch.arange(10.0))
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
