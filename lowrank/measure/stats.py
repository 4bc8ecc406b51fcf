r"""Judging probes: intervals, paired differences, and the book's unimodality test.

:mod:`lowrank.probes` fits probes and returns accuracies with per-item correctness; this module
says what they are worth.

* :func:`paired_interval`: the mean difference of two per-item scores on the **same** items,
  its standard error and a Student-t interval (pairing removes the items' shared difficulty);
* :func:`paired_curve`: every level of a curve minus one reference level, each a
  :func:`paired_interval` on the same items (a curve's rise from its first level);
* :func:`group_interval`: the difference of the means of two independent groups (networks of
  two configurations), with a pooled Student-t interval: the replicates are the unit;
* :func:`accuracy_interval`: the Wilson score interval of one accuracy;
* :func:`t_quantile` and :func:`seed_interval`: Student's t, and the interval over seeds;
* :func:`curve_shape`: the unimodality test with independent (or no) errors, and
  :func:`paired_curve_shape` with paired errors on per-item correctness; both return a
  :class:`CurveShape`, which carries what it could detect.

The unimodality test asks whether the peak of a curve stands above **both** ends by more than
``z`` standard errors of the difference (``z = 3`` by default: a chance bump of that size has
probability about 0.1% at each end):

.. math:: a_p - a_0 > z\, \mathrm{se}(a_p - a_0) \quad\text{and}\quad
          a_p - a_{S-1} > z\, \mathrm{se}(a_p - a_{S-1}),\qquad p = \text{the peak}.

With independent errors ``se(a_p - a_0) = sqrt(s_p^2 + s_0^2)``; with paired errors it is the
standard error of the per-item differences (:func:`paired_interval`). Only the ends are compared
with the peak: a curve that is flat within noise on one side of its peak is not called unimodal,
however its interior wiggles. The peak should be chosen on other data (cross-fitting, as
:func:`lowrank.measure.levels.crossfit_level` does): the argmax of the tested curve favours a
noisy high point and inflates both margins.

The ``mde`` of a verdict is the margin the test would have accepted on the side that held it
back: ``z * se(a_p - a_0)`` for "decreasing", ``z * se(a_p - a_{S-1})`` for "increasing", the
larger for "flat" and "unimodal". A true bump of that size is seen half the time;
:meth:`CurveShape.detectable` gives the one seen at 80% power, ``(z + 0.84) se``, on either side.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch

from lowrank._checks import as_float64, check_count, check_open_unit, check_real
from lowrank.measure.student_t import t_quantile

__all__ = [
    "PairedDifference",
    "paired_interval",
    "PairedCurve",
    "paired_curve",
    "GroupDifference",
    "group_interval",
    "Interval",
    "accuracy_interval",
    "SeedMean",
    "seed_interval",
    "CurveShape",
    "curve_shape",
    "paired_curve_shape",
    "VERDICTS",
    "MIN_ITEMS",
]

#: The verdicts of :func:`curve_shape`.
VERDICTS = ("unimodal", "decreasing", "increasing", "flat")

#: The fewest items :func:`paired_curve_shape` gives a verdict on: its normal-theory errors need
#: a few tens of discordant items, and below 20 items one item moves an accuracy by 5 points.
MIN_ITEMS = 20


@dataclass(frozen=True)
class PairedDifference:
    """What :func:`paired_interval` returns: the mean of ``a - b`` over ``n`` items, its standard
    error, and the ``level`` interval ``[low, high]``."""

    mean: float
    stderr: float
    low: float
    high: float
    n: int
    level: float

    @property
    def z(self) -> float:
        """The mean difference in standard errors: ±inf when every differing item differs
        alike (a zero error with a nonzero mean), 0 when no item differs."""
        return _margin(self.mean, self.stderr)


def _margin(gap: float, error: float) -> float:
    """``gap / error``, with an exact (zero-error) gap counted as infinitely many errors."""
    if error > 0:
        return gap / error
    return math.copysign(math.inf, gap) if gap != 0 else 0.0


def _scores(values, name: str) -> torch.Tensor:
    v = as_float64(values, name)  # finite, and a list straight to float64 (1e308 stays finite)
    if v.ndim != 1 or v.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 items, got shape {tuple(v.shape)}")
    return v


def paired_interval(a, b, level: float = 0.95) -> PairedDifference:
    r"""The mean difference of two per-item scores measured on the same ``N`` items.

    Method: normal theory over items. With :math:`d_i = a_i - b_i`, the mean :math:`\bar d`,
    its standard error :math:`s_d / \sqrt N` (``s_d`` the sample deviation, ``N - 1`` in the
    denominator) and the interval :math:`\bar d \pm t_{(1+\text{level})/2,\,N-1}\, s_d /
    \sqrt N`. For 0/1 correctness this is the Wald interval of the difference of two paired
    proportions; the items that both score alike add nothing to :math:`s_d` (only the
    discordant ones do), which is why it is much narrower than two independent binomial errors.
    Adequate once there are a few tens of discordant items; with none, the error is 0.

    Arguments:
        a, b: ``(N,)`` scores of the same items, in the same order (0/1 correctness, or any
            finite values), ``N >= 2``.
        level: confidence of the interval, in (0, 1).
    """
    x, y = _scores(a, "a"), _scores(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"a and b must score the same items: got {x.numel()} and {y.numel()} scores"
        )
    level = check_open_unit(level, "level")
    d = x - y
    N = d.numel()
    mean, stderr = d.mean().item(), (d.std() / math.sqrt(N)).item()
    if not (math.isfinite(mean) and math.isfinite(stderr)):
        raise ValueError(
            "a - b overflows float64 (scores near 1e308): rescale the scores before comparing"
        )
    half = t_quantile((1 + level) / 2, N - 1) * stderr
    return PairedDifference(mean, stderr, mean - half, mean + half, N, level)


@dataclass(frozen=True)
class PairedCurve:
    """What :func:`paired_curve` returns: per level, the mean of ``scores[s] - scores[reference]``
    over the items, its standard error and the ``level`` interval (``(S,)`` float64 tensors;
    exactly 0 at the reference)."""

    mean: torch.Tensor
    stderr: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    reference: int
    level: float


def paired_curve(scores: torch.Tensor, reference: int = 0, level: float = 0.95) -> PairedCurve:
    """Each level of a curve minus its ``reference`` level, with paired errors: row ``s`` is
    :func:`paired_interval` of ``scores[s]`` against ``scores[reference]``.

    Arguments:
        scores: ``(S, M)`` per-item scores at ``S`` levels on the **same** ``M`` items (0/1
            correctness, as :class:`lowrank.measure.probes.ProbeCurve` keeps it).
        reference: the level every other is compared with (0: the smallest sigma).
        level: confidence of the intervals, in (0, 1).
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[1] < 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
        raise ValueError(f"scores must be an (S, M) tensor with M >= 2 items, got {shape}")
    reference = _check_index(reference, "reference", scores.shape[0])
    rows = [paired_interval(row, scores[reference], level) for row in scores]
    columns = (torch.tensor([getattr(r, name) for r in rows], dtype=torch.float64)
               for name in ("mean", "stderr", "low", "high"))  # fmt: skip
    return PairedCurve(*columns, reference, rows[0].level)


@dataclass(frozen=True)
class GroupDifference:
    """What :func:`group_interval` returns: ``mean(a) - mean(b)``, its standard error, the
    ``level`` interval ``[low, high]`` and the group sizes."""

    mean: float
    stderr: float
    low: float
    high: float
    n_a: int
    n_b: int
    level: float


def group_interval(a, b, level: float = 0.95) -> GroupDifference:
    r"""The difference of the means of two independent groups of replicates (say, one bump per
    network, four networks trained on each of two data sets).

    Method: Student's two-sample t with the pooled variance,
    :math:`s_p^2 = ((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)`, standard error
    :math:`s_p \sqrt{1/n_a + 1/n_b}` and the interval :math:`\bar a - \bar b \pm
    t_{(1+\text{level})/2,\, n_a + n_b - 2}` times it. With equal group sizes the standard
    error is Welch's. The spread between replicates is in it, so a claim about the groups
    holds beyond the replicates at hand (unlike a paired interval over one network's items).

    Arguments:
        a, b: ``(n_a,)`` and ``(n_b,)`` finite values, ``n_a + n_b >= 3`` and each >= 1.
        level: confidence of the interval, in (0, 1).
    """
    x, y = as_float64(a, "a"), as_float64(b, "b")
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"a and b must be 1-D groups of replicates, got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}: reduce each replicate to one value first"
        )
    if x.numel() < 1 or y.numel() < 1 or x.numel() + y.numel() < 3:
        raise ValueError(
            f"need at least one value in each group and three in all, got {x.numel()} and "
            f"{y.numel()}"
        )
    level = check_open_unit(level, "level")
    n_a, n_b = x.numel(), y.numel()
    df = n_a + n_b - 2
    squares = ((x - x.mean()).square().sum() + (y - y.mean()).square().sum()).item()
    stderr = math.sqrt(squares / df * (1 / n_a + 1 / n_b))
    mean = (x.mean() - y.mean()).item()
    if not (math.isfinite(mean) and math.isfinite(stderr)):
        raise ValueError("the groups overflow float64 (values near 1e308): rescale them first")
    half = t_quantile((1 + level) / 2, df) * stderr
    return GroupDifference(mean, stderr, mean - half, mean + half, n_a, n_b, level)


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` at confidence ``level``."""

    low: float
    high: float
    level: float


def accuracy_interval(correct: int | torch.Tensor, total: int, level: float = 0.95) -> Interval:
    """Wilson score interval of an accuracy ``correct / total`` at confidence ``level``.

    Unlike ``p +- z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and does not collapse to a
    point at 0% or 100%.
    """
    total = check_count(total, "total")
    level = check_open_unit(level, "level")
    if isinstance(correct, torch.Tensor):
        whole = correct.numel() == 1 and (
            not correct.is_floating_point()
            or math.isfinite(correct.item())
            and correct.item() == int(correct.item())
        )
        if not whole:
            raise ValueError(
                f"correct must be a whole count of items, got {correct.tolist()}: pass "
                "(predictions == labels).sum(), not an accuracy or a mean"
            )
        correct = int(correct.item())
    correct = check_count(correct, "correct", minimum=0)
    if correct > total:
        raise ValueError(f"correct must lie in [0, {total}], got {correct}")
    z = math.sqrt(2) * torch.special.erfinv(torch.tensor(level, dtype=torch.float64)).item()
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total**2))
    # exactly 0 at 0/M and 1 at M/M, where centre and half agree up to rounding
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return Interval(low, high, level)


@dataclass(frozen=True)
class SeedMean:
    """A mean over seeds and its Student-t interval, ``mean +- half_width`` at ``level``.

    Attributes:
        mean: the mean over the first dimension (the ``seeds``, ``R`` of them).
        half_width: ``t_{(1+level)/2, R-1} s / sqrt(R)``, the same shape.
    """

    mean: torch.Tensor
    half_width: torch.Tensor
    seeds: int
    level: float


def seed_interval(values: torch.Tensor, level: float = 0.95) -> SeedMean:
    """Mean over the first dimension (seeds) and the half-width of its Student-t interval at
    ``level``: ``t_{(1+level)/2, R-1} s / sqrt(R)`` for ``R >= 2`` seeds with sample deviation
    ``s``; ``values`` must be finite. Paired differences (two feature sets probed on the same
    subsets) go in as one tensor."""
    v = as_float64(values, "values")
    if v.ndim == 0 or v.shape[0] < 2:
        raise ValueError(f"need at least 2 seeds for an interval, got shape {tuple(v.shape)}")
    level = check_open_unit(level, "level")
    R = v.shape[0]
    mean, spread = v.mean(0), v.std(0)
    if not bool(torch.all(torch.isfinite(mean) & torch.isfinite(spread))):
        raise ValueError("values overflow float64 (near 1e308): rescale them first")
    return SeedMean(mean, t_quantile((1 + level) / 2, R - 1) * spread / math.sqrt(R), R, level)


@dataclass(frozen=True)
class CurveShape:
    """Verdict of :func:`curve_shape` or :func:`paired_curve_shape`.

    Attributes:
        verdict: ``"unimodal"`` (the peak stands above both ends), ``"decreasing"`` (only above
            the last end: the curve falls from a start within noise of its peak),
            ``"increasing"`` (only above the first end) or ``"flat"`` (above neither).
        peak: index of the peak (the largest value, unless given).
        rise, fall: the peak's margin over the first and the last value, in standard errors
            of the difference (0 when the peak is that end).
        gap_first, gap_last: the same margins in the curve's own units (the peak's value minus
            the end's; 0 when the peak is that end).
        mde: the margin seen half the time (the module docstring), in the curve's units: ``z``
            times the standard error of the side that fell short (the larger when both or
            neither did; 0 for exact curves); ``inf`` when the peak is an end of the grid.
        paired: whether the standard errors are paired (:func:`paired_curve_shape`).
        z: the margin the test asked for, in standard errors.
        errors: the standard errors of the two margins (first end, last end); 0 at the peak's
            own end.
    """

    verdict: str
    peak: int
    rise: float
    fall: float
    gap_first: float = math.nan
    gap_last: float = math.nan
    mde: float = math.nan
    paired: bool = False
    z: float = 3.0
    errors: tuple[float, float] = (math.nan, math.nan)

    def detectable(self, power: float = 0.8, side: str | None = None) -> float:
        """The true margin that the test meets with probability ``power``: ``(z +
        Phi^-1(power))`` standard errors, 3.84 at ``z = 3`` and 80% (``mde`` is the one at 50%).
        ``side``: ``"first"`` (the rise from the first level), ``"last"`` (the fall to the last),
        or ``None``: the side that ``mde`` names. ``inf`` where the peak is an end of the grid."""
        power = check_open_unit(power, "power")
        if side not in (None, "first", "last"):
            raise ValueError(f"side must be 'first', 'last' or None, got {side!r}")
        if math.isinf(self.mde) or self.mde == 0:
            return self.mde
        error = self.mde / self.z if side is None else self.errors[side == "last"]
        return error * (self.z + NormalDist().inv_cdf(power))

    def summary(self, scale: float = 100.0, unit: str = "points") -> str:
        """The verdict with what the test could see, e.g. ``"decreasing: a rise to the peak
        below 0.27 points would not be seen"``; ``scale`` turns the curve's units into
        ``unit`` (100: accuracies in [0, 1] as points)."""
        mde = self.mde * scale
        if self.verdict == "unimodal":
            bump = min(self.gap_first, self.gap_last) * scale
            return f"unimodal: the peak stands {bump:.2f} {unit} above both ends (MDE {mde:.2f})"
        if math.isinf(mde):
            return f"{self.verdict}: the peak is an end of the grid, so no bump can be seen"
        side = {"decreasing": "a rise to the peak", "increasing": "a fall from the peak"}
        bump = side.get(self.verdict, "a bump above both ends")
        return f"{self.verdict}: {bump} below {mde:.2f} {unit} would not be seen"


def _check_index(value, name: str, length: int) -> int:
    """``value`` as an index into ``length`` levels, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer index, got {value!r}")
    if not 0 <= value < length:
        raise ValueError(f"{name} must be an index in [0, {length - 1}], got {value}")
    return int(value)


def _check_z_and_peak(z, peak, length: int) -> tuple[float, int | None]:
    z = check_real(z, "z", 0.0, None, open_low=True)
    return z, None if peak is None else _check_index(peak, "peak", length)


def _shape(z: float, peak: int, last: int, gaps: tuple[float, float],
           errors: tuple[float, float], paired: bool) -> CurveShape:  # fmt: skip
    """The verdict from the peak's gaps over the two ends (index 0 and ``last``) and the
    standard errors of those gaps (0 at the peak's own end)."""

    rise, fall = _margin(gaps[0], errors[0]), _margin(gaps[1], errors[1])
    passed = (rise > z, fall > z)
    # the threshold of the side(s) that failed (both, when both passed): a curve that falls far
    # to its last level is held back only by its rise, whose error is what bounds the bump
    binding = [e for e, ok in zip(errors, passed, strict=True) if not ok] or list(errors)
    # a peak at an end of the grid has no bump above both ends to detect
    mde = math.inf if peak in (0, last) else z * max(binding)
    verdicts = {(True, True): "unimodal", (False, True): "decreasing",
                (True, False): "increasing", (False, False): "flat"}  # fmt: skip
    return CurveShape(verdicts[passed], peak, rise, fall, *gaps, mde, paired, z, errors)


def curve_shape(
    values: Sequence[float] | torch.Tensor,
    stderr: Sequence[float] | torch.Tensor | None = None,
    z: float = 3.0,
    peak: int | None = None,
) -> CurveShape:
    """The book's unimodality test (see the module docstring) with independent errors: compare
    the peak of ``values`` with both ends in units of ``sqrt(s_p^2 + s_end^2)``, ``z`` (> 0) the
    margin. ``stderr=None`` is for exact curves: any positive difference counts.

    ``peak``: the index of the peak when it was chosen on other data (a validation split). The
    argmax of the tested curve itself favours a noisy high point, which inflates both margins;
    a peak chosen elsewhere does not, and may sit below an end (a negative margin). For
    accuracies measured on the same test items, :func:`paired_curve_shape` is the sharper
    test."""
    a = torch.as_tensor(values, dtype=torch.float64)
    s = torch.zeros_like(a) if stderr is None else torch.as_tensor(stderr, dtype=torch.float64)
    if a.ndim != 1 or a.numel() < 3 or s.shape != a.shape:
        raise ValueError(
            f"values and stderr must be 1-D of one length >= 3, got {tuple(a.shape)} and "
            f"{tuple(s.shape)}"
        )
    if not bool(torch.all(torch.isfinite(a))) or not bool(torch.all(torch.isfinite(s) & (s >= 0))):
        raise ValueError("values must be finite and stderr finite and >= 0")
    z, peak = _check_z_and_peak(z, peak, len(a))
    peak = int(a.argmax()) if peak is None else peak
    ends = (0, len(a) - 1)
    gaps = tuple(0.0 if e == peak else (a[peak] - a[e]).item() for e in ends)
    errors = tuple(0.0 if e == peak else math.hypot(s[peak].item(), s[e].item()) for e in ends)
    return _shape(z, peak, len(a) - 1, gaps, errors, paired=False)


def paired_curve_shape(correct: torch.Tensor, peak: int, z: float = 3.0) -> CurveShape:
    """The unimodality test with paired errors, on per-item scores of one curve.

    Arguments:
        correct: ``(S, M)`` per-item scores at each of ``S >= 3`` noise levels on the **same**
            ``M`` test items (0/1 correctness, as :class:`lowrank.measure.probes.ProbeCurve`
            keeps it).
        peak: the level to test, chosen on other data (required: choosing it on these items
            would bias both margins upwards).
        z: the margin, in paired standard errors (> 0).

    The margins are :func:`paired_interval` of the peak's scores against each end's, in its
    standard errors; it needs ``M >= MIN_ITEMS`` (20) items. For 0/1 scores a standard error
    is at least ``1 / M``, one discordant item's: where no item differs, the items cannot tell
    one item's difference from none, so that side is no infinite margin nor an MDE of 0.
    """
    c = correct.detach().to(torch.float64) if isinstance(correct, torch.Tensor) else None
    if c is None or c.ndim != 2 or c.shape[0] < 3 or c.shape[1] < 2:
        shape = tuple(correct.shape) if isinstance(correct, torch.Tensor) else type(correct)
        raise ValueError(f"correct must be an (S, M) tensor with S >= 3 levels, got {shape}")
    if c.shape[1] < MIN_ITEMS:
        raise ValueError(
            f"correct has {c.shape[1]} items per level; a verdict needs at least {MIN_ITEMS} "
            "(probe on more test items)"
        )
    if peak is None:
        raise TypeError("peak is required: choose it on other data than these items")
    z, peak = _check_z_and_peak(z, peak, c.shape[0])
    ends = (0, c.shape[0] - 1)
    pairs = [None if e == peak else paired_interval(c[peak], c[e]) for e in ends]
    gaps = tuple(0.0 if p is None else p.mean for p in pairs)
    binary = bool(torch.all((c == 0) | (c == 1)))
    floor = 1 / c.shape[1] if binary else 0.0
    errors = tuple(0.0 if p is None else max(p.stderr, floor) for p in pairs)
    return _shape(z, peak, ends[1], gaps, errors, paired=True)
