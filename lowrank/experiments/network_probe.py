"""A trained network probed across noise levels, as chapters 5, 9 and 10 do.

* :func:`probe_network` -> :class:`NetworkProbe`: features of every block (and readout), the
  one chosen by cross-fitting on the training images, its test curve with per-item
  correctness and the paired unimodality test at its cross-fitted peak;
* :func:`probe_blocks` -> :class:`BlockProbe` per block (or any feature set): the test curve,
  the peak chosen by cross-fitting and the paired unimodality test at it;
* :func:`probe_pixels` -> the same :class:`BlockProbe` for the noisy inputs themselves, with
  the noise the networks' features were read under (the pixel control);
* :func:`probe_per_sigma` -> one :class:`BlockProbe` from several (blocks, readouts, weight
  decays), the setting chosen at each level by cross-fitting on the training images;
* :func:`few_label_scores`: per test item, the share of few-label probes (seeded subsets) that
  get it right, for every feature set: the scores :func:`leads` compares with few labels;
* :func:`leads` -> a :class:`Lead` per feature set and control: how far a network's features
  beat a control (noisy pixels, the untrained network) on the same test items, at the smallest
  level and at the features' peak, with per-comparison and simultaneous (Bonferroni) intervals.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import as_sigmas, check_increasing, labelled_pair
from lowrank.measure.features import features_across_sigma, noisy_pixels
from lowrank.measure.inference import bonferroni_level
from lowrank.measure.levels import block_per_sigma_from_crossfit, crossfit_level
from lowrank.measure.probes import (
    ProbeCurve,
    binomial_curve,
    probe_across_sigma,
    subset_correctness,
)
from lowrank.measure.stats import (
    CurveShape,
    PairedDifference,
    paired_curve_shape,
    paired_interval,
)

__all__ = [
    "NetworkProbe",
    "probe_network",
    "BlockProbe",
    "probe_blocks",
    "probe_pixels",
    "probe_per_sigma",
    "few_label_scores",
    "Lead",
    "leads",
]


@dataclass(frozen=True)
class NetworkProbe:
    """What :func:`probe_network` finds for one network.

    Attributes:
        layer: the block (and readout, ``"block@2x2"``) whose cross-fitted curve on the
            training images peaks highest.
        curve: its test curve (:class:`ProbeCurve`, with per-item correctness).
        crossfit: its cross-fitted curve on the training images (:func:`crossfit_level`),
            which chose it and places the peak.
        shape: :func:`lowrank.measure.stats.paired_curve_shape` of the test curve at that peak.
        blocks: every block and readout probed, each a :class:`BlockProbe` at its own peak
            (the family the choice was made in).
        feature_seconds: wall time of the feature extraction.
    """

    layer: str
    curve: ProbeCurve
    crossfit: ProbeCurve
    shape: CurveShape
    blocks: dict[str, BlockProbe]
    feature_seconds: float


def probe_network(
    denoiser,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    sigmas: Sequence[float] | torch.Tensor,
    *,
    blocks: Sequence[str] | None = None,
    readout_grid: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> NetworkProbe:
    """The paper's probe of one trained network, as chapter 5 runs it: features of every block
    (``denoiser.block_names()``, hooked on ``denoiser.network``, noisy input, noise seeded by
    ``seed``) under the global average and, with ``readout_grid`` (``"2x2"``), under that
    spatial average too, from the same forward pass; every one probed by :func:`probe_blocks`;
    the one whose cross-fitted accuracy on the training images peaks highest is reported, with
    the paired unimodality test (the book's margin, 3 paired standard errors) at its
    cross-fitted peak. The test items take no part in any choice.

    Arguments:
        denoiser: a :class:`lowrank.nets.unet.UNetDenoiser` (or its EDM form), on ``x_train``'s
            device.
        train: labelled training images ``(x_train, y_train)``, ``(N, C, H, W)`` and ``(N,)``.
        test: ``(x_test, y_test)``, the labelled images the curve is scored on.
        blocks: the blocks to read, a subset of ``denoiser.block_names()`` (default: all).
    """
    (x_train, y_train), (x_test, y_test) = (
        labelled_pair(train, "train"),
        labelled_pair(test, "test"),
    )
    sigmas = check_increasing(as_sigmas(sigmas))
    names = denoiser.block_names()
    if blocks is not None:
        if (isinstance(blocks, str) or not blocks or len(set(blocks)) != len(blocks)
                or any(name not in names for name in blocks)):  # fmt: skip
            raise ValueError(
                f"blocks must be a non-empty list of distinct blocks of the network {names}, got "
                f"{blocks!r}"
            )
        names = list(blocks)
    if readout_grid is not None:
        names = names + [f"{name}@{readout_grid}" for name in names]
    start = time.perf_counter()
    features = features_across_sigma(denoiser, names,
                                     torch.cat([x_train, x_test]), sigmas, seed=seed,
                                     progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    N = len(x_train)
    by_block = probe_blocks(sigmas, {n: F[:, :N] for n, F in features.items()}, y_train,
                            {n: F[:, N:] for n, F in features.items()}, y_test,
                            seed=seed)  # fmt: skip
    layer = max(by_block, key=lambda name: by_block[name].crossfit.accuracy.max().item())
    chosen = by_block[layer]
    return NetworkProbe(layer, chosen.curve, chosen.crossfit, chosen.shape, by_block, seconds)


@dataclass(frozen=True)
class BlockProbe:
    """What :func:`probe_blocks` finds for one block.

    Attributes:
        curve: the test curve (:class:`ProbeCurve`, with per-item correctness).
        crossfit: the cross-fitted curve on the training images, which places the peak.
        shape: :func:`lowrank.measure.stats.paired_curve_shape` of the test curve at that peak: the
            paired bump (``gap_first``), its margins and its MDE.
    """

    curve: ProbeCurve
    crossfit: ProbeCurve
    shape: CurveShape


def probe_blocks(
    sigmas: Sequence[float] | torch.Tensor,
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test_features: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    seed: int = 0,
    z: float = 3.0,
    weight_decay: float = 1e-4,
) -> dict[str, BlockProbe]:
    """The paired unimodality test of every block, each at its own peak: for each name, the
    logistic probe's test curve (:func:`probe_across_sigma`), the level chosen by cross-fitting
    on the training features (:func:`crossfit_level`, seeded with ``seed``; the test items are
    never seen by the choice) and :func:`lowrank.measure.stats.paired_curve_shape` at that level.

    Unlike :func:`probe_network`, no block is singled out: a bump in any block is reported
    where it is, with its own MDE.

    Arguments:
        train_features, test_features: per block, ``(S, N, p)`` and ``(S, M, p)`` features at
            the ``S`` levels (as :func:`lowrank.measure.features.features_across_sigma`
            returns them, or noisy pixels).
        weight_decay: the probes' L2 penalty (:func:`lowrank.measure.probes.logistic_probe`),
            the same in the test probes and in the cross-fitting that places the peak.
    """
    sigmas = check_increasing(as_sigmas(sigmas))
    if set(train_features) != set(test_features):
        raise ValueError(
            f"train_features and test_features must name the same blocks, got "
            f"{sorted(train_features)} and {sorted(test_features)}"
        )
    out = {}
    for name in train_features:
        curve = probe_across_sigma(sigmas, list(train_features[name]), train_labels,
                                   list(test_features[name]), test_labels,
                                   weight_decay=weight_decay)  # fmt: skip
        peak = crossfit_level(train_features[name], train_labels, seed=seed, sigmas=sigmas,
                              weight_decay=weight_decay)  # fmt: skip
        shape = paired_curve_shape(curve.correct, peak.index, z=z)
        out[name] = BlockProbe(curve, peak.curve, shape)
    return out


def probe_pixels(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    sigmas: Sequence[float] | torch.Tensor,
    *,
    seed: int = 0,
    z: float = 3.0,
) -> BlockProbe:
    """The pixel control of :func:`probe_network`: the noisy images themselves, flattened
    (:func:`lowrank.measure.features.noisy_pixels` of the training and test images in one pass,
    so the noise is the one the network's features of the same call saw), probed as a block by
    :func:`probe_blocks`."""
    (x_train, y_train), (x_test, y_test) = (
        labelled_pair(train, "train"),
        labelled_pair(test, "test"),
    )
    sigmas = check_increasing(as_sigmas(sigmas))
    pixels = noisy_pixels(torch.cat([x_train, x_test]), sigmas, seed=seed)
    N = len(x_train)
    return probe_blocks(sigmas, {"pixels": pixels[:, :N]}, y_train, {"pixels": pixels[:, N:]},
                        y_test, seed=seed, z=z)["pixels"]  # fmt: skip


def probe_per_sigma(
    probes: dict[str, BlockProbe], train_labels: torch.Tensor, *, seed: int = 0, z: float = 3.0
) -> BlockProbe:
    """One curve from several probes of the same items (the keys name settings: blocks,
    readouts, weight decays), the setting chosen at each level as Fig. 5 chooses its layer: by
    its cross-fitted accuracy on the training images
    (:func:`lowrank.measure.levels.block_per_sigma_from_crossfit`, whose ``seed`` must be the
    one the cross-fits used). At each level the result holds the chosen setting's test and
    cross-fitted correctness; its peak is the argmax of that cross-fitted envelope, and the
    paired shape test is read there. The test items take no part in any choice.
    """
    choice = block_per_sigma_from_crossfit(
        {name: p.crossfit for name, p in probes.items()}, train_labels, seed=seed
    )
    first = next(iter(probes.values())).curve
    for name, p in probes.items():
        if p.curve.correct.shape != first.correct.shape:
            raise ValueError(
                f"probes must score the same test items at the same levels: {name!r} has "
                f"{tuple(p.curve.correct.shape)}, the first {tuple(first.correct.shape)}"
            )
    rows = list(enumerate(choice.blocks))
    test = torch.stack([probes[name].curve.correct[s] for s, name in rows])
    crossfit = torch.stack([probes[name].crossfit.correct[s] for s, name in rows])
    envelope = binomial_curve(choice.sigmas, crossfit)
    peak = int(envelope.accuracy.argmax())
    return BlockProbe(
        binomial_curve(first.sigmas, test), envelope, paired_curve_shape(test, peak, z=z)
    )


def few_label_scores(
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test_features: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    size: int,
    seeds: Sequence[int],
) -> dict[str, torch.Tensor]:
    """For every feature set, ``(S, M)`` float64: at each level, the share of the few-label
    probes (one per seed, each trained on the seed's class-balanced subset of ``size`` training
    rows, :func:`lowrank.measure.probes.subset_correctness`) that get each test item right.
    The same subsets serve every feature set, so the scores of two feature sets are paired on
    labelled images and test items alike. An interval over the test items built on these scores
    (:func:`leads`) is conditional on the drawn subsets: it does not count how another draw of
    labelled images would move them.

    Arguments:
        train_features, test_features: ``{name: (S, N, p)}`` and ``{name: (S, M, p)}``.
    """
    if set(train_features) != set(test_features):
        raise ValueError(
            f"train_features and test_features must name the same feature sets, got "
            f"{sorted(train_features)} and {sorted(test_features)}"
        )
    return {
        name: subset_correctness(
            list(train_features[name]),
            train_labels,
            list(test_features[name]),
            test_labels,
            size,
            seeds,
        )
        .double()
        .mean(0)  # fmt: skip
        for name in train_features
    }


@dataclass(frozen=True)
class Lead:
    """One feature set's lead over one control at one noise level, on the same test items.

    Attributes:
        features, control: the two names.
        level: the index into the grid where both are read.
        difference: :func:`lowrank.measure.stats.paired_interval` of the features' per-item
            scores minus the control's, at the family's per-comparison confidence.
        simultaneous: the same difference with a Bonferroni interval over every lead of the
            family (:func:`leads` returns the family), so that all of them hold jointly.
    """

    features: str
    control: str
    level: int
    difference: PairedDifference
    simultaneous: PairedDifference


def leads(
    scores: dict[str, torch.Tensor],
    controls: dict[str, torch.Tensor | dict[str, torch.Tensor]],
    peaks: dict[str, int],
    *,
    level: float = 0.95,
) -> list[Lead]:
    """Whether a network's features beat their controls: for every feature set and every
    control, the paired difference of per-item scores at the smallest level (index 0) and,
    when it differs, at the feature set's own peak (the control read at the same level, the
    same noisy inputs).

    The returned leads are one family: each carries its per-comparison interval at ``level``
    and its simultaneous one at :func:`lowrank.measure.inference.bonferroni_level` over the
    family's size, so "every lead of the table is above 0" holds at ``level`` jointly.

    Arguments:
        scores: ``{name: (S, M)}`` per-item scores on the same ``M`` test items in the same
            order at the same ``S`` levels: 0/1 correctness (:attr:`ProbeCurve.correct`), or
            the fraction of few-label subsets that got an item right
            (:func:`lowrank.measure.probes.subset_correctness` averaged over its seeds).
        controls: ``{control: (S, M)}`` scored alike, compared with every feature set (noisy
            pixels), or ``{control: {name: (S, M)}}`` with one per feature set (an untrained
            network read at the same block and readout).
        peaks: ``{name: index}`` for every feature set, chosen on training items only (e.g.
            :func:`lowrank.measure.levels.crossfit_level`).
        level: confidence of the per-comparison intervals, in (0, 1).
    """
    if not scores or not controls:
        raise ValueError("scores and controls must each hold at least one feature set")
    shape = next(iter(scores.values())).shape
    matched = {}  # control -> {feature set: its scores}
    for control, values in controls.items():
        if isinstance(values, dict):
            if set(values) != set(scores):
                raise ValueError(
                    f"controls[{control!r}] must hold one score tensor per feature set of "
                    f"scores {sorted(scores)}, got {sorted(values)}"
                )
            matched[control] = values
        else:
            matched[control] = dict.fromkeys(scores, values)
    tables = [("scores", scores)]
    tables += [(f"controls[{c!r}]", table) for c, table in matched.items()]
    for kind, table in tables:
        for name, values in table.items():
            if not isinstance(values, torch.Tensor) or values.ndim != 2 or values.shape != shape:
                got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values)
                raise ValueError(
                    f"{kind}[{name!r}] must be an (S, M) tensor of the shape of the others "
                    f"{tuple(shape)}, got {got}"
                )
    if set(peaks) != set(scores):
        raise ValueError(
            f"peaks must name every feature set of scores, got {sorted(peaks)} for "
            f"{sorted(scores)}"
        )
    checked = {}
    for name, peak in peaks.items():
        try:
            index = None if isinstance(peak, bool) else operator.index(peak)
        except TypeError:
            index = None
        if index is None or not 0 <= index < shape[0]:
            raise ValueError(f"peaks[{name!r}] must be a level index in 0 .. {shape[0] - 1}, "
                             f"got {peak!r}")  # fmt: skip
        checked[name] = index
    peaks = checked
    where = [(f, c, i) for f in scores for c in controls for i in dict.fromkeys((0, peaks[f]))]
    joint = bonferroni_level(level, len(where))
    return [
        Lead(
            f,
            c,
            i,
            paired_interval(scores[f][i], matched[c][f][i], level),
            paired_interval(scores[f][i], matched[c][f][i], joint),
        )  # fmt: skip
        for f, c, i in where
    ]
