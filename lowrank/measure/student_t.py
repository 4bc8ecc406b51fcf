r"""Student's t distribution, exactly: :func:`t_quantile` for the intervals of
:mod:`lowrank.measure.stats` and the probes, and :func:`t_cdf_central`, its CDF in closed form.

With :math:`t = \sqrt{df} \tan\theta` the density of Student's t becomes
:math:`c \cos^{df - 1}\theta` on a bounded interval, whose integral is a finite sum of
positive terms for every integer ``df`` (Abramowitz and Stegun 26.7.3-4). So the CDF is exact up to
rounding, and the quantile is found by bisection on :math:`\theta`, which costs the same in the
far tail as at the centre.
"""

from __future__ import annotations

import math

import torch

from lowrank._checks import check_count, check_real

__all__ = ["t_quantile", "t_cdf_central"]


def t_cdf_central(theta: float, df: int) -> float:
    r"""``2 F(t) - 1`` of Student's t with ``df`` degrees of freedom at
    :math:`t = \sqrt{df} \tan\theta`, :math:`\theta \in [0, \pi/2)`, in closed form (Abramowitz
    and Stegun 26.7.3-4, finite sums in :math:`c = \cos\theta`): for even ``df``,
    :math:`\sin\theta \sum_{k < df/2} a_k c^{2k}` with :math:`a_0 = 1`,
    :math:`a_k = a_{k-1} (2k - 1) / (2k)`; for odd ``df``, :math:`\frac{2}{\pi}(\theta +
    \sin\theta \sum_{k < (df - 1)/2} b_k c^{2k + 1})` with :math:`b_0 = 1`,
    :math:`b_k = b_{k-1} (2k) / (2k + 1)`. Every term is positive, so the sum does not cancel."""
    df = check_count(df, "df")
    theta = check_real(theta, "theta", 0.0, math.pi / 2)
    c, s = math.cos(theta), math.sin(theta)
    odd = df % 2 == 1
    terms = (df - 1) // 2 if odd else df // 2
    if terms == 0:  # df = 1: the Cauchy distribution
        return 2 * theta / math.pi
    k = torch.arange(1, terms, dtype=torch.float64)
    ratios = 2 * k / (2 * k + 1) if odd else (2 * k - 1) / (2 * k)
    coefficients = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(ratios, 0)])
    powers = 2 * torch.arange(terms, dtype=torch.float64) + (1 if odd else 0)
    total = (coefficients * c**powers).sum().item()
    return 2 / math.pi * (theta + s * total) if odd else s * total


def t_quantile(probability: float, df: int) -> float:
    r"""Quantile of Student's t distribution with ``df`` degrees of freedom, ``probability`` in
    (0.5, 1).

    Exact where a closed form exists: :math:`\tan(\pi (p - 1/2))` at ``df = 1`` and
    :math:`(2p - 1) / \sqrt{2 p (1 - p)}` at ``df = 2``. Elsewhere the CDF is the finite sum of
    :func:`t_cdf_central` in the angle :math:`\theta = \arctan(t / \sqrt{df})`, inverted by
    bisection on :math:`\theta \in (0, \pi/2)`: a bounded variable, so the far tail (``p``
    within 1e-9 of 1, quantiles in the thousands) costs no more than the centre. The relative
    error against ``scipy.stats.t.ppf`` is measured in the tests."""
    df = check_count(df, "df")
    probability = check_real(probability, "probability", 0.5, 1.0, open_low=True)
    if probability >= 1:
        raise ValueError(f"probability must lie in (0.5, 1), got {probability}")
    upper = 1.0 - probability  # exact for p in (0.5, 1) (Sterbenz)
    if df == 1:
        return 1.0 / math.tan(math.pi * upper)
    if df == 2:
        return (2 * probability - 1) / math.sqrt(2 * probability * upper)
    target = 2 * probability - 1
    lo, hi = 0.0, math.pi / 2
    while hi - lo > 1e-17 * hi:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf_central(mid, df) < target else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)
