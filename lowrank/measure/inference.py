r"""What a verdict could have seen: power, detectable effects, families of tests, exact tests.

:mod:`lowrank.measure.stats` decides; this module says how much its decisions could see.

* :func:`power`: the chance that the shape test's margin, a difference ``> z`` standard errors,
  is met when the true difference is ``effect`` (a normal estimate):
  :math:`\Phi(\text{effect}/\text{se} - z)`;
* :func:`detectable_effect`: the true difference met with probability ``power``,
  :math:`(z + \Phi^{-1}(\text{power}))\,\text{se}`. At power 0.5 it is the ``mde`` of
  :class:`lowrank.measure.stats.CurveShape` (``z se``); at the conventional 0.8 it is
  ``(z + 0.84) se``, 3.84 s.e. at ``z = 3``;
* :func:`bonferroni_level` and :func:`holm`: a family of ``m`` intervals or tests that hold
  jointly (Bonferroni: each at ``1 - (1 - level) / m``; Holm's step-down adjusted p-values,
  valid under any dependence and never less powerful than Bonferroni);
* :func:`familywise_rate`: the chance of at least one false call among ``m`` independent tests
  at a per-test rate (the z = 3 shape test's false "unimodal" rate, at most 0.135% per curve
  (one end's one-sided tail), over a book's hundred curves is about 12.6%);
* :func:`gap_verdict`: the verdict on two accuracies measured on the same items, in words, with
  the direction of a gap that falls short of the bar and the gap found at 80% power;
* :func:`rise_check`: what a paired shape verdict could see of a rise from the first level:
  the rise found with 80% power and the power against a given effect (the paper's own rise) when
  a rise was tested, and in any case the rise bound, the largest upper end of the paired 95%
  intervals of a level minus the first;
* :func:`permutation_test`: the exact two-sided test of a difference of means between two small
  groups (4 + 4 networks: all 70 splits), which needs no normality of a zero-inflated statistic;
* :func:`group_family`: a family of such two-group comparisons (one per block, say), each with
  its exact permutation p, Holm's adjustment over the family and a t interval at the Bonferroni
  level, so that "grew" and "shrank" hold jointly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

from lowrank._checks import as_float64, check_count, check_open_unit, check_real
from lowrank.measure.stats import (
    CurveShape,
    GroupDifference,
    PairedDifference,
    group_interval,
    paired_curve,
)

__all__ = [
    "power",
    "detectable_effect",
    "bonferroni_level",
    "holm",
    "familywise_rate",
    "gap_verdict",
    "RiseCheck",
    "rise_check",
    "UNTESTED",
    "PermutationTest",
    "permutation_test",
    "MAX_SPLITS",
    "GroupComparison",
    "group_family",
]

#: The most splits :func:`permutation_test` enumerates (C(20, 10) = 184,756 fits; 10 + 10 groups).
MAX_SPLITS = 200_000

_NORMAL = NormalDist()


def _check_stderr(stderr) -> float:
    return check_real(stderr, "stderr", 0.0, None, open_low=True)


def power(effect: float, stderr: float, z: float = 3.0) -> float:
    """The chance that a normal estimate with standard error ``stderr`` of a true difference
    ``effect`` exceeds ``z`` standard errors: the power of the shape test's one margin."""
    effect = check_real(effect, "effect")
    stderr = _check_stderr(stderr)
    z = check_real(z, "z", 0.0)
    # erfc, not 1 + erf: the left tail keeps its relative precision (power 1e-8 is common)
    return 0.5 * math.erfc((z - effect / stderr) / math.sqrt(2))


def detectable_effect(stderr: float, z: float = 3.0, power: float = 0.8) -> float:
    """The true difference that the margin ``> z`` standard errors detects with probability
    ``power`` (0.8 by convention; 0.5 gives ``z * stderr``, the stats module's MDE)."""
    stderr = _check_stderr(stderr)
    z = check_real(z, "z", 0.0)
    power = check_open_unit(power, "power")
    return (z + _NORMAL.inv_cdf(power)) * stderr


def bonferroni_level(level: float, tests: int) -> float:
    """The confidence level of each of ``tests`` intervals that hold jointly at ``level``."""
    level = check_open_unit(level, "level")
    tests = check_count(tests, "tests")
    return 1 - (1 - level) / tests


def holm(p_values) -> torch.Tensor:
    """Holm's step-down adjusted p-values, in the order given: sort ascending, multiply the
    ``i``-th smallest (from 0) by ``m - i``, carry the running maximum, cap at 1. A test is
    rejected at family-wise level ``alpha`` when its adjusted p-value is at most ``alpha``."""
    p = as_float64(p_values, "p_values").flatten()
    if len(p) == 0 or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"p_values must be probabilities in [0, 1], at least one, got {p}")
    m = len(p)
    order = torch.argsort(p, stable=True)
    scaled = (p[order] * torch.arange(m, 0, -1, dtype=torch.float64)).clamp(max=1.0)
    adjusted = torch.empty_like(p)
    adjusted[order] = torch.cummax(scaled, 0).values
    return adjusted


def familywise_rate(per_test: float, tests: int) -> float:
    """The chance of at least one false call among ``tests`` independent tests, each wrong
    with probability ``per_test``: ``1 - (1 - per_test)^tests``."""
    per_test = check_real(per_test, "per_test", 0.0, 1.0)
    tests = check_count(tests, "tests")
    return -math.expm1(tests * math.log1p(-per_test)) if per_test < 1 else 1.0


def gap_verdict(
    gap: PairedDifference, first: str, second: str, *, z: float = 3.0, scale: float = 100.0,
    unit: str = "points",
) -> str:  # fmt: skip
    """The book's bar for two scores on the same items, in words: ``"<first> ahead"`` when
    ``gap`` (a :func:`lowrank.measure.stats.paired_interval` of first minus second) exceeds
    ``z`` paired standard errors, ``"<second> ahead"`` below ``-z``; otherwise "not told
    apart", with the direction and size of the gap and the true gap that the bar finds with 80%
    power (:func:`detectable_effect`). ``scale`` turns the scores' units into ``unit``."""
    if not isinstance(gap, PairedDifference):
        raise TypeError(f"gap must be a stats.PairedDifference, got {type(gap).__name__}")
    for name, value in (("first", first), ("second", second), ("unit", unit)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    z = check_real(z, "z", 0.0, None, open_low=True)
    scale = check_real(scale, "scale", 0.0, None, open_low=True)
    if abs(gap.z) > z:
        return f"{first if gap.z > 0 else second} ahead"
    if gap.stderr == 0:  # no item differs between the two
        return f"not told apart: no item differs between {first} and {second}"
    found = detectable_effect(gap.stderr, z) * scale
    if gap.mean == 0:
        size = "no gap"
    else:
        leader = first if gap.mean > 0 else second
        size = f"{leader} by {abs(gap.mean) * scale:.2f} {unit} ({abs(gap.z):.1f} SE)"
    return (
        f"not told apart at {z:g} paired SE: {size}; a true gap of {found:.2f} {unit} is found "
        "with 80% power"
    )


@dataclass(frozen=True)
class RiseCheck:
    """What :func:`rise_check` says a curve's test could see of a rise from its first level.

    Attributes:
        reading: the verdict in words: the shape's verdict when a rise was tested, and "no
            detectable rise (peak at the first level)" when the level chosen on other data is the
            first, where there is no rise to test.
        tested: whether a rise was tested (the chosen peak is not the first level).
        bound: the rise bound: the largest upper end of the paired ``level`` intervals of a level
            minus the first (0 at the first level itself, so never negative). Each upper end
            holds at ``(1 + level) / 2``, so over ``S - 1`` levels they hold jointly at ``1 - (S
            - 1)(1 - level) / 2`` or more (80% for 8 levels at 95%). Defined whether or not a
            rise was tested.
        detectable: the true rise that the ``z`` margin finds with 80% power, from the paired
            standard error of the rise (:func:`detectable_effect`); ``nan`` when untested.
        power: the chance that the ``z`` margin finds a true rise of ``effect``; ``nan`` when
            untested.
    """

    reading: str
    tested: bool
    bound: float
    detectable: float
    power: float


#: The reading of a curve whose chosen peak is its first level: no rise was tested.
UNTESTED = "no detectable rise (peak at the first level)"


def rise_check(
    correct: torch.Tensor, shape: CurveShape, effect: float, level: float = 0.95
) -> RiseCheck:
    """What a paired shape verdict on per-item scores could see of a rise from the first level.

    Arguments:
        correct: ``(S, M)`` per-item scores at ``S`` levels on the same ``M`` items, the curve
            that ``shape`` judged.
        shape: :func:`lowrank.measure.stats.paired_curve_shape` of ``correct`` at a peak chosen
            on other data.
        effect: the true rise to compute the power against, in the scores' units (for accuracy
            as a fraction, the paper's +1.48 points is 0.0148).
        level: the confidence of the paired intervals behind the rise bound.

    Where the chosen peak is the first level nothing was tested: the shape test has no rise to
    measure, and the bound is what the data say instead. Elsewhere the rise's paired standard
    error (``shape.errors[0]``, floored at one discordant item) gives the rise found with 80%
    power and the power against ``effect`` at the test's own margin ``shape.z``.
    """
    if not isinstance(shape, CurveShape) or not shape.paired:
        raise TypeError(
            f"shape must be a paired stats.CurveShape (paired_curve_shape), got {shape!r}"
        )
    effect = check_real(effect, "effect", 0.0, None, open_low=True)
    curve = paired_curve(correct, 0, level)  # checks correct's shape and level
    if curve.mean.shape[0] <= shape.peak:
        raise ValueError(
            f"shape's peak {shape.peak} is not a level of correct, which has "
            f"{curve.mean.shape[0]} levels: pass the curve the shape was computed from"
        )
    if abs(curve.mean[shape.peak].item() - shape.gap_first) > 1e-9:
        raise ValueError(
            f"shape's rise {shape.gap_first:.6g} is not correct's rise to level {shape.peak} "
            f"({curve.mean[shape.peak].item():.6g}): pass the curve the shape was computed from"
        )
    bound = curve.high.max().item()
    if shape.peak == 0:
        return RiseCheck(UNTESTED, False, bound, math.nan, math.nan)
    error = shape.errors[0]
    return RiseCheck(
        shape.verdict,
        True,
        bound,
        detectable_effect(error, shape.z),
        power(effect, error, shape.z),
    )


@dataclass(frozen=True)
class PermutationTest:
    """An exact two-sided permutation test of ``mean(a) - mean(b)``.

    Attributes:
        difference: the observed difference of means.
        p_value: the share of all splits of the pooled values into groups of the two sizes whose
            difference is at least as large in absolute value (the observed split included, so
            never 0).
        splits: how many splits were enumerated, ``C(n_a + n_b, n_a)``.
    """

    difference: float
    p_value: float
    splits: int


def permutation_test(a, b) -> PermutationTest:
    """Exact two-sided permutation test of the difference of means of two independent groups
    (each at least 2 values), enumerating every split of the pooled values; at most
    :data:`MAX_SPLITS` splits. Two-sided by ``|difference|`` (scipy's ``permutation_test``
    doubles the smaller one-sided p instead; the two agree for groups of equal size). The
    smallest p is ``2 / C(n, n_a)``: 2/70 = 0.029 for 4 + 4, so a Holm family of two or more
    such tests cannot reject at 0.05."""
    a, b = as_float64(a, "a").flatten(), as_float64(b, "b").flatten()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each group needs at least 2 values, got {len(a)} and {len(b)}")
    n = len(a) + len(b)
    splits = math.comb(n, len(a))
    if splits > MAX_SPLITS:
        raise ValueError(
            f"{len(a)} + {len(b)} values have {splits:,} splits, more than MAX_SPLITS = "
            f"{MAX_SPLITS:,}: an exact test is too slow here; use a t interval or subsample"
        )
    pooled = torch.cat([a, b])
    members = torch.tensor(list(itertools.combinations(range(n), len(a))))
    chosen = torch.zeros(splits, n, dtype=torch.bool)
    chosen[torch.arange(splits)[:, None], members] = True
    sum_a = (pooled * chosen).sum(1)
    differences = sum_a / len(a) - (pooled.sum() - sum_a) / len(b)
    observed = (a.mean() - b.mean()).item()
    # ties in |difference| up to rounding count as "as large": sums in another order differ
    # in the last bits (relative to the data's scale)
    tolerance = 1e-12 * pooled.abs().max().item()
    extreme = int((differences.abs() >= abs(observed) - tolerance).sum())
    return PermutationTest(observed, extreme / splits, splits)


@dataclass(frozen=True)
class GroupComparison:
    """One member of a :func:`group_family`: ``mean(a) - mean(b)`` for one name.

    Attributes:
        test: the exact two-sided permutation test of the difference (:func:`permutation_test`).
        p_holm: its p-value adjusted by :func:`holm` over the whole family.
        interval: the pooled two-sample t interval (:func:`lowrank.measure.stats.group_interval`)
            at the Bonferroni level of the family (:func:`bonferroni_level`), so that the
            intervals of the family hold jointly at ``level``.
        level: the family's confidence; a member is a change when ``p_holm <= 1 - level``.
    """

    test: PermutationTest
    p_holm: float
    interval: GroupDifference
    level: float

    @property
    def direction(self) -> str:
        """The change, "grew" or "shrank", where Holm's p is at most ``1 - level``; "no change
        shown" elsewhere."""
        if self.p_holm > 1 - self.level:
            return "no change shown"
        return "grew" if self.test.difference > 0 else "shrank"


def group_family(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], level: float = 0.95
) -> dict[str, GroupComparison]:
    """For every name, ``mean(a[name]) - mean(b[name])`` over two independent groups of
    replicates (one value per network, say), judged as one family: the exact permutation test
    of each, Holm's adjusted p-values over the family, and t intervals at the Bonferroni level.

    The permutation test decides (it needs no normality, and a bump that is often exactly 0 is
    far from normal); the intervals give the size. With 4 + 4 replicates the smallest p is
    2/70, so a family of two or more names cannot show a change at 0.05: the design then only
    bounds the change, and the intervals say by how much.

    Arguments:
        a, b: ``{name: (n_a,)}`` and ``{name: (n_b,)}`` values, the same names in both.
        level: the family's confidence, in (0, 1).
    """
    level = check_open_unit(level, "level")
    if not a or set(a) != set(b):
        raise ValueError(
            f"a and b must name the same members, at least one, got {sorted(a)} and {sorted(b)}"
        )
    tests = {name: permutation_test(a[name], b[name]) for name in a}
    adjusted = holm([t.p_value for t in tests.values()])
    each = bonferroni_level(level, len(tests))
    return {
        name: GroupComparison(
            test, adjusted[i].item(), group_interval(a[name], b[name], each), level
        )  # fmt: skip
        for i, (name, test) in enumerate(tests.items())
    }
