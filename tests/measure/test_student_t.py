"""lowrank.measure.student_t: the t quantile against printed tables and scipy, the CDF's finite
sums against the integral of the density, with its bad-input table."""

import math

import pytest
import torch
from scipy.stats import t as scipy_t

from lowrank.measure import student_t
from tests.bad_input_cases import check_case


@pytest.mark.parametrize(
    "df, quantile", [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (30, 2.042272456)]
)
def test_t_quantile_matches_tables(df, quantile):
    assert student_t.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-6)


def test_t_quantile_against_scipy_from_the_centre_to_the_far_tail():
    """Worst relative error against scipy.stats.t.ppf at df 1, 2, 3, 10 and 1000: the closed
    forms at df 1 and 2, the finite sums elsewhere (measured: 8e-12 up to p = 0.9995, 1.6e-8 at
    p = 1 - 1e-9, where 2p - 1 itself carries a relative error of 1e-7 in 1 - p)."""
    for df in (1, 2, 3, 10, 1000):
        for p in [0.5 + 1e-6, 0.6, 0.75, 0.9, 0.95, 0.975, 0.99, 0.999, 0.9995]:
            assert student_t.t_quantile(p, df) == pytest.approx(scipy_t.ppf(p, df), rel=1e-10)
        for p in [0.99995, 0.9999995, 1 - 1e-8, 1 - 1e-9]:
            assert student_t.t_quantile(p, df) == pytest.approx(scipy_t.ppf(p, df), rel=1e-7)
    # the case: the quadrature gave 57173.5 where tan(pi * 0.49995) = 6366.2
    assert student_t.t_quantile(0.99995, 1) == pytest.approx(
        math.tan(math.pi * 0.49995), rel=1e-12
    )


def test_t_cdf_central_is_the_integral_of_the_density():
    """The finite sums against Simpson's rule on the density in theta, where it is
    c cos(theta)^(df - 1) on a bounded interval."""
    for df in (1, 2, 3, 4, 7, 30):
        norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)
        for theta in (0.1, 0.7, 1.3, 1.55):
            x = torch.linspace(0, theta, 20001, dtype=torch.float64)
            w = torch.ones_like(x)
            w[1:-1:2], w[2:-1:2] = 4, 2
            integral = (w * norm * x.cos() ** (df - 1)).sum().item() * theta / 20000 / 3
            assert student_t.t_cdf_central(theta, df) == pytest.approx(2 * integral, rel=1e-10)


BAD_INPUT = {
    "t quantile at p = 1": (lambda t: student_t.t_quantile(1.0, 3), (ValueError, "(0.5, 1)")),
    "t quantile at NaN": (
        lambda t: student_t.t_quantile(float("nan"), 3),
        (ValueError, "finite"),
    ),
    "central CDF beyond pi / 2": (
        lambda t: student_t.t_cdf_central(2.0, 3),
        (ValueError, "theta must lie in [0.0, 1.57"),
    ),
    "central CDF at a fractional df": (
        lambda t: student_t.t_cdf_central(0.5, 2.5),
        (TypeError, "df must be an integer"),
    ),
    "t quantile at df 0": (
        lambda t: student_t.t_quantile(0.9, 0),
        (ValueError, "df must be >= 1"),
    ),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input(name, tmp_path):
    check_case(name, *BAD_INPUT[name], tmp_path)
