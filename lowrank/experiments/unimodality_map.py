r"""Where unimodality lives in the MoLRG (chapter 11, beyond the paper): :func:`map_point`
measures, for one mixture, every curve the book asks about on one grid of noise levels, and
:func:`relaxed_molrg` builds the mixtures of the map: the paper's Assumption 1 over ``delta``
and ``K``, and its three open relaxations (overlapping subspaces, unequal ranks, non-uniform
class probabilities) as slices through the Fig. 3 setting.

At each point (a :class:`MapPoint`):

* the SNR of Definition 1 of the optimal denoiser (exact, Monte Carlo) and its shape, and for
  Assumption 1 Theorem 1's approximation and its worst relative error;
* the Bayes accuracy (:func:`lowrank.measure.bayes.bayes_accuracy`), which data processing
  forbids to rise;
* the linear probe on the optimal denoiser's features ``h`` and on the noisy input itself,
  trained on ``items`` samples and tested on ``items`` others, every level on the same test
  samples and noise draw; the probe's peak is chosen by cross-fitting on the training samples
  and tested with paired errors (:func:`lowrank.measure.stats.paired_curve_shape`);
* the ICR of ``h`` (:mod:`lowrank.measure.icr`) over the MoLRG's own views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch
from tqdm.std import tqdm

from lowrank._checks import as_sigmas, check_count, check_increasing
from lowrank.measure.bayes import BayesCurve, bayes_accuracy
from lowrank.measure.icr import icr, icr_interval, molrg_views
from lowrank.measure.levels import crossfit_level
from lowrank.measure.probes import ProbeCurve, probe_across_sigma
from lowrank.measure.snr import SNREstimate, snr_exact
from lowrank.measure.stats import CurveShape, Interval, curve_shape, paired_curve_shape
from lowrank.theory.closed_forms import snr_approx, theorem1_applies
from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import MoLRG, random_orthonormal

__all__ = [
    "RELAXATIONS",
    "ICR_TAU",
    "DIP_RESAMPLES",
    "relaxed_molrg",
    "MapPoint",
    "map_point",
    "map_grid",
]

#: The ICR's ridge, relative to the features' mean variance (see :mod:`lowrank.measure.icr`).
ICR_TAU = 1e-3

#: Paired bootstrap resamples of the ICR's dip at every point.
DIP_RESAMPLES = 100

#: The slices of the map beyond Assumption 1, and the value of each that is Assumption 1.
RELAXATIONS = {"angle": 90.0, "rank_spread": 0, "pi_first": None}


def relaxed_molrg(
    delta: float, *, K: int = 3, d: int = 5, axis: str | None = None, value=None, seed: int = 0
) -> MoLRG:
    """A MoLRG with ``K`` classes of rank ``d`` in ``n = (K + 1) d`` dimensions (room for the
    tilted class's extra directions; the SNR, probes and ICR work in the ``m = K d`` union
    coordinates, so ``n`` costs nothing), relaxed
    along one ``axis``:

    * ``None``: Assumption 1 (orthogonal, equal ranks, uniform ``pi``);
    * ``"angle"``: class 1's subspace at principal angles ``value`` degrees (all ``d`` of
      them, in (0, 90]) to class 0's, the others orthogonal to both;
    * ``"rank_spread"``: ranks ``d + value`` and ``d - value`` for classes 0 and 1 (an integer
      in ``[0, d - 1]``), the others ``d``;
    * ``"pi_first"``: class 0 has probability ``value`` in (0, 1), the others share the rest.
    """
    K, d = check_count(K, "K", minimum=2), check_count(d, "d")
    n = (K + 1) * d
    if axis is None:
        if value is not None:
            raise ValueError(f"value = {value!r} needs an axis: give axis='angle', ...")
        return MoLRG(n=n, K=K, d=d, delta=delta, seed=seed)
    if axis not in RELAXATIONS:
        raise ValueError(f"axis must be None or one of {sorted(RELAXATIONS)}, got {axis!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value for axis {axis!r} must be a number, got {value!r}")
    if axis == "pi_first":
        if not 0 < float(value) < 1:
            raise ValueError(f"pi_first must lie in (0, 1), got {value!r}")
        rest = (1 - float(value)) / (K - 1)
        return MoLRG(n=n, K=K, d=d, delta=delta, pi=[float(value)] + [rest] * (K - 1), seed=seed)
    basis = random_orthonormal(n, K * d + d, seed)
    bases = [basis[:, k * d : (k + 1) * d] for k in range(K)]
    if axis == "angle":
        if not 0 < float(value) <= 90:
            raise ValueError(f"angle must lie in (0, 90] degrees, got {value!r}")
        theta = math.radians(float(value))
        bases[1] = math.cos(theta) * bases[0] + math.sin(theta) * bases[1]
    else:
        spread = int(value)
        if spread != value or not 0 <= spread < d:
            raise ValueError(f"rank_spread must be an integer in [0, {d - 1}], got {value!r}")
        bases[0] = basis[:, : d + spread]
        bases[1] = basis[:, d + spread : 2 * d]
        bases[2:] = [basis[:, (k + 1) * d : (k + 2) * d] for k in range(1, K - 1)]
    return MoLRG.from_bases(bases, delta)


@dataclass(frozen=True)
class MapPoint:
    """Every curve of one mixture over one grid of noise levels (see the module docstring).

    Attributes:
        sigmas: ``(S,)`` the grid.
        snr: the optimal denoiser's SNR; snr_peak: its peak, the argmax of a second,
            independent estimate (the argmax of the tested curve would inflate both margins);
            snr_shape: the shape test at that peak (independent errors, z = 3).
        approx_error: Theorem 1's (derived ``D``) worst relative error against ``snr`` over the
            grid; ``None`` off Assumption 1, where the theorem does not apply.
        bayes: the Bayes accuracy.
        probe: the linear probe on ``h`` (test samples); probe_peak: its level chosen by
            cross-fitting on the training samples; probe_shape: the paired test at that level.
        input_probe: the linear probe on the noisy input's union coordinates (the "pixels").
        icr: ``(S,)`` the ICR of ``h`` over the MoLRG's views (relative ridge :data:`ICR_TAU`);
            icr_intervals: its bootstrap intervals over items, when asked for.
        icr_dip, icr_dip_stderr: how far the ICR's lowest level lies below its first, and the
            standard error of that difference (a paired bootstrap over items,
            :data:`DIP_RESAMPLES` resamples; 0 and 0 when the lowest level is the first).
    """

    sigmas: torch.Tensor
    snr: SNREstimate
    snr_peak: int
    snr_shape: CurveShape
    approx_error: float | None
    bayes: BayesCurve
    probe: ProbeCurve
    probe_peak: int
    probe_shape: CurveShape
    input_probe: ProbeCurve
    icr: torch.Tensor
    icr_intervals: list[Interval] | None
    icr_dip: float
    icr_dip_stderr: float

    @property
    def snr_rise(self) -> float:
        """The SNR at its peak over its value at the first level, minus 1 (0 at a first-level
        peak)."""
        return (self.snr.value[self.snr_peak] / self.snr.value[0]).item() - 1

    @property
    def icr_resolved(self) -> bool:
        """Whether the ICR dips below its first level by more than a one-sided 95% test allows,
        Bonferroni-corrected for the ``S - 1`` levels its minimum was chosen among."""
        if self.icr_dip_stderr == 0:
            return False
        bar = NormalDist().inv_cdf(1 - 0.05 / (len(self.sigmas) - 1))
        return self.icr_dip > bar * self.icr_dip_stderr

    @property
    def peak_sigmas(self) -> dict[str, float]:
        """Where each curve peaks (the ICR: where it is lowest): SNR, probe (cross-fitted),
        ICR."""
        s = self.sigmas
        return {
            "SNR": s[self.snr_peak].item(),
            "probe": s[self.probe_peak].item(),
            "ICR": s[int(self.icr.argmin())].item(),
        }

    def summary(self) -> dict[str, object]:
        """The point's verdicts and sizes as one flat row (a table's row of the map)."""
        peaks = self.peak_sigmas
        return {
            "SNR": self.snr_shape.verdict,
            "SNR peak / start - 1": self.snr_rise,
            "Theorem 1 worst error": self.approx_error,
            "probe": self.probe_shape.verdict,
            "probe bump (points)": 100
            * min(self.probe_shape.gap_first, self.probe_shape.gap_last),
            "Bayes largest rise (s.e.)": self.bayes.largest_rise,
            "σ SNR peak": peaks["SNR"],
            "σ probe peak": peaks["probe"],
            "σ ICR minimum": peaks["ICR"],
            "ICR dip": self.icr_dip,
            "ICR dip resolved": self.icr_resolved,
        }


def _noisy_features(den, z0, eps, sigmas) -> tuple[list, list]:
    """``h`` and the noisy coordinates at every level, in float32 for the probes."""
    levels = sigmas.tolist()
    noisy = [z0 + s * eps for s in levels]
    h = [
        den.posterior_coordinates(z, s).coordinates.float()
        for z, s in zip(noisy, levels, strict=True)
    ]
    return h, [z.float() for z in noisy]


def map_point(
    mix: MoLRG,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    items: int,
    snr_samples: int,
    views: int = 8,
    icr_items: int = 1000,
    icr_resamples: int = 0,
    seed: int = 0,
) -> MapPoint:
    """Measure one mixture (see :class:`MapPoint`).

    Arguments:
        mix: the MoLRG.
        sigmas: ``(S,)`` increasing noise levels, ``S >= 3``.
        items: training and (as many) test samples of the probes; the Bayes accuracy uses
            both sets' worth.
        snr_samples: Monte Carlo draws per level for the SNR.
        views, icr_items: the ICR's views per item and its items.
        icr_resamples: bootstrap resamples for the ICR's intervals (0: none).
        seed: seeds every draw.
    """
    sig = check_increasing(as_sigmas(sigmas, torch.float64))
    if len(sig) < 3:
        raise ValueError(f"sigmas needs at least 3 levels for a shape, got {len(sig)}")
    if not isinstance(mix, MoLRG):
        raise TypeError(f"mix must be a MoLRG (its ICR views keep a), got {type(mix).__name__}")
    N = check_count(items, "items", minimum=20)
    if icr_resamples:
        check_count(icr_resamples, "icr_resamples", minimum=10)
    gen = torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    snr = snr_exact(mix, sig, check_count(snr_samples, "snr_samples", minimum=2), gen)
    approx_error = None
    if theorem1_applies(mix):
        approx = snr_approx(mix.K, mix.class_ranks[0], mix.delta, sig)
        approx_error = ((approx - snr.value).abs() / snr.value).max().item()
    bayes = bayes_accuracy(mix, sig, 2 * N, gen)
    den = MixtureDenoiser(mix)
    y = mix.sample_labels(2 * N, gen)
    latents = torch.randn(2 * N, mix.m, generator=gen, dtype=torch.float64)
    eps = torch.randn(2 * N, mix.m, generator=gen, dtype=torch.float64)
    h, noisy = _noisy_features(den, mix.coordinates(y, latents), eps, sig)
    train, test = slice(0, N), slice(N, 2 * N)
    peak = crossfit_level([f[train] for f in h], y[train], seed=seed, sigmas=sig).index
    probe = probe_across_sigma(sig, [f[train] for f in h], y[train], [f[test] for f in h], y[test])
    input_probe = probe_across_sigma(
        sig, [f[train] for f in noisy], y[train], [f[test] for f in noisy], y[test]
    )
    icr_values, intervals, dip = _icr_curve(
        mix, den, (y, latents), sig, views, icr_items, icr_resamples, gen, seed
    )
    snr_peak = int(snr_exact(mix, sig, snr_samples, gen).value.argmax())
    return MapPoint(
        sigmas=sig,
        snr=snr,
        snr_peak=snr_peak,
        snr_shape=curve_shape(snr.value, snr.stderr, peak=snr_peak),
        approx_error=approx_error,
        bayes=bayes,
        probe=probe,
        probe_peak=peak,
        probe_shape=paired_curve_shape(probe.correct, peak),
        input_probe=input_probe,
        icr=icr_values,
        icr_intervals=intervals,
        icr_dip=dip[0],
        icr_dip_stderr=dip[1],
    )


def _icr_curve(mix, den, items, sig, views, icr_items, resamples, gen, seed):
    """The ICR at every level over the first ``icr_items`` items' views, its intervals (with
    ``resamples``), and the dip of its lowest level below the first with the paired bootstrap
    error of that difference."""
    y, latents = items
    if icr_items > len(y):
        raise ValueError(f"icr_items = {icr_items} exceeds the {len(y)} samples drawn: lower it")
    rows = slice(0, check_count(icr_items, "icr_items", minimum=2))
    per_level, values, intervals = [], [], [] if resamples else None
    for s in sig.tolist():
        z = molrg_views(mix, y[rows], latents[rows], s, views, gen)
        hv = den.posterior_coordinates(z.reshape(-1, mix.m), s).coordinates.reshape(z.shape)
        result = icr(hv, ICR_TAU, relative=True)
        per_level.append((hv, result.tau))
        values.append(result.value)
        if resamples:
            intervals.append(
                icr_interval(hv, ICR_TAU, relative=True, resamples=resamples, seed=seed)
            )
    values = torch.tensor(values, dtype=torch.float64)
    lowest = int(values.argmin())
    if lowest == 0:
        return values, intervals, (0.0, 0.0)
    boot = torch.Generator().manual_seed(seed)
    (first, ridge_first), (low, ridge_low) = per_level[0], per_level[lowest]
    dips = []
    for _ in range(DIP_RESAMPLES):  # the same items at both levels: a paired difference
        pick = torch.randint(0, first.shape[1], (first.shape[1],), generator=boot)
        dips.append(icr(first[:, pick], ridge_first).value - icr(low[:, pick], ridge_low).value)
    return (
        values,
        intervals,
        ((values[0] - values[lowest]).item(), float(torch.tensor(dips).std())),
    )


def map_grid(
    mixtures: dict,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    seed: int = 0,
    progress: bool = False,
    **options,
) -> dict:
    """:func:`map_point` for every mixture of ``mixtures`` (``{key: MoLRG}``) with the same
    ``options``, the ``i``-th seeded ``seed + i`` so that the points' draws are independent;
    returns ``{key: MapPoint}`` in the same order."""
    if not mixtures:
        raise ValueError("mixtures is empty: give at least one {key: MoLRG}")
    seed = check_count(seed, "seed", minimum=0)
    return {
        key: map_point(mix, sigmas, **options, seed=seed + i)
        for i, (key, mix) in enumerate(tqdm(mixtures.items(), desc="map", disable=not progress))
    }
