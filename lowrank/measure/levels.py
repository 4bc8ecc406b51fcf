"""Which layer and which noise level to report, chosen on training features only (never on
the test split).

* :func:`best_layer`: the layer whose validation curve peaks highest, on a validation split
  carved from the training features;
* :func:`best_level`: the noise level, chosen the same way;
* :func:`crossfit_level`: the noise level chosen by cross-fitting on the training features
  (every labelled image validates once), with its per-item correctness;
* :func:`block_per_sigma`: the paper's Fig. 5 reading, the best block at **each** noise level,
  and how much that per-level choice inflates the curve it picks from (the winner's curse of a
  maximum over blocks), measured on the training features: choose on one cross-fitting half,
  score on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import check_count, check_increasing
from lowrank.measure.probes import (
    ProbeCurve,
    binomial_curve,
    logistic_logits,
    probe_across_sigma,
    probe_layers,
    projection_classifier,
    recorded_sigmas,
)

__all__ = [
    "LayerChoice",
    "LevelChoice",
    "best_layer",
    "best_level",
    "crossfit_level",
    "BlockPerSigma",
    "block_per_sigma",
    "block_per_sigma_from_crossfit",
]


@dataclass(frozen=True)
class LayerChoice:
    """The block chosen on training features, and every block's validation curve.

    Attributes:
        name: the chosen block.
        curves: ``{name: ProbeCurve}`` on the held-out training rows, one per block.
    """

    name: str
    curves: dict[str, ProbeCurve]


@dataclass(frozen=True)
class LevelChoice:
    """The noise level chosen on training features, and the curve it was chosen from.

    Attributes:
        index: the chosen level, an index into the grid.
        curve: the validation (or cross-fitted) curve whose argmax it is.
    """

    index: int
    curve: ProbeCurve


def _validation_split(N: int, validation: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows to fit on and rows to validate on: a seeded ``validation`` share held out."""
    if not 0 < validation < 1:
        raise ValueError(f"validation must lie in (0, 1), got {validation}")
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    held = max(1, round(validation * N))
    return order[held:], order[:held]


def best_layer(
    sigmas: Sequence[float] | torch.Tensor,
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    validation: float = 0.2,
    seed: int = 0,
) -> LayerChoice:
    """The layer whose logistic probe peaks highest on a held-out part of the **training**
    features (a seeded ``validation`` share of them), and every layer's validation curve: the
    layer is chosen without looking at the test split.

    Arguments:
        train_features: ``{name: (S, N, p)}``.
    """
    fit_rows, val_rows = _validation_split(len(train_labels), validation, seed)
    curves = probe_layers(
        sigmas,
        {name: F[:, fit_rows] for name, F in train_features.items()},
        train_labels[fit_rows],
        {name: F[:, val_rows] for name, F in train_features.items()},
        train_labels[val_rows],
    )
    return LayerChoice(max(curves, key=lambda name: curves[name].accuracy.max().item()), curves)


def best_level(
    train_features: Sequence[torch.Tensor] | torch.Tensor,
    train_labels: torch.Tensor,
    validation: float = 0.2,
    seed: int = 0,
    sigmas: Sequence[float] | torch.Tensor | None = None,
) -> LevelChoice:
    """The noise level (an index into the grid) where the logistic probe does best on a
    held-out part of the **training** features, and the validation curve: the split and the
    probes of :func:`best_layer` for one layer, so the test split is never looked at.

    Arguments:
        train_features: ``S`` tensors ``(N, p)`` (or one ``(S, N, p)`` tensor).
        sigmas: recorded in the curve (default: the indices ``0 .. S-1``).
    """
    stacked = torch.stack(list(train_features))
    fit_rows, val_rows = _validation_split(len(train_labels), validation, seed)
    grid = torch.arange(len(stacked), dtype=torch.float64) if sigmas is None else sigmas
    curve = probe_across_sigma(grid, list(stacked[:, fit_rows]), train_labels[fit_rows],
                               list(stacked[:, val_rows]), train_labels[val_rows])  # fmt: skip
    return LevelChoice(int(curve.accuracy.argmax()), curve)


def crossfit_level(
    train_features: Sequence[torch.Tensor] | torch.Tensor,
    train_labels: torch.Tensor,
    seed: int = 0,
    sigmas: Sequence[float] | torch.Tensor | None = None,
    weight_decay: float = 1e-4,
    *,
    method: str = "logistic",
    rank: int = 5,
) -> LevelChoice:
    """The noise level where the probe does best on the **training** features, chosen by
    two-fold cross-fitting: the rows are split in two seeded halves; a probe fitted on each
    half scores the other, so every labelled row validates once and the choice rests on all
    ``N`` rows instead of a fifth of them (:func:`best_level`). The test split is never seen.

    Arguments:
        train_features: ``S`` tensors ``(N, p)`` (or one ``(S, N, p)`` tensor), ``N >= 4``.
        sigmas: ``(S,)`` increasing levels, recorded in the curve (default: the indices
            ``0 .. S-1``).
        method: ``"logistic"`` (the linear probe, with ``weight_decay``; ``rank`` unused) or
            ``"projection"`` (:func:`lowrank.measure.probes.projection_classifier` with
            ``rank``; ``weight_decay`` unused).

    Returns:
        The argmax of the cross-fitted accuracy, and the curve: accuracy over all ``N`` rows
        (each scored by the probe that did not see it), binomial errors, and ``correct``
        ``(S, N)`` in the rows' original order.
    """
    stacked = torch.stack(list(train_features))
    N = len(train_labels)
    if stacked.ndim != 3 or stacked.shape[1] != N or N < 4:
        raise ValueError(
            f"train_features must be S tensors (N, p) with N = {N} >= 4 rows, got "
            f"{tuple(stacked.shape)}"
        )
    seed = check_count(seed, "seed", minimum=0)
    if method not in ("logistic", "projection"):
        raise ValueError(f"method must be 'logistic' or 'projection', got {method!r}")
    if sigmas is not None:
        sigmas = check_increasing(recorded_sigmas(sigmas))
        if len(sigmas) != len(stacked):
            raise ValueError(
                f"sigmas has {len(sigmas)} levels but train_features has {len(stacked)}: give "
                "one level per feature set"
            )
    halves = _halves(train_labels, seed)
    correct = _crossfit_correct(stacked, train_labels, halves, weight_decay, method, rank)
    grid = torch.arange(len(stacked), dtype=torch.float64) if sigmas is None else sigmas
    curve = binomial_curve(recorded_sigmas(grid), correct)
    return LevelChoice(int(curve.accuracy.argmax()), curve)


def _halves(labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two seeded cross-fitting halves of the rows, each holding every class."""
    N = len(labels)
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    halves = (order[: N // 2], order[N // 2 :])
    for half in halves:
        if len(labels[half].unique()) != len(labels.unique()):
            raise ValueError("a cross-fitting half lacks a class: give more rows per class")
    return halves


def _crossfit_correct(stacked, labels, halves, weight_decay, method="logistic", rank=5):
    """``(S, N)`` correctness of every row, scored by the probe fitted on the other half."""
    correct = torch.zeros(len(stacked), len(labels), dtype=torch.bool)
    for fit_rows, val_rows in (halves, halves[::-1]):
        for i, F in enumerate(stacked):
            if method == "projection":
                pred = projection_classifier(F[fit_rows], labels[fit_rows], F[val_rows], rank)
            else:
                z = logistic_logits(F[fit_rows], labels[fit_rows], F[val_rows], weight_decay)
                pred = z[0].argmax(1)
            correct[i, val_rows] = pred == labels[val_rows]
    return correct


@dataclass(frozen=True)
class BlockPerSigma:
    """The best block at each noise level, chosen on training features (Fig. 5's reading).

    Attributes:
        sigmas: ``(S,)`` the levels.
        blocks: the block with the highest cross-fitted accuracy at each level.
        envelope: ``(S,)`` that highest accuracy: the curve a per-level maximum plots.
        honest: ``(S,)`` the accuracy of the block chosen on one half's scores, read on the
            other half's (averaged over the two directions): what the choice is worth.
        inflation: ``(S,)`` the mean over the two halves of (the best block's score on that
            half - its score on the other half): how far a maximum over blocks flatters itself
            at that level, on ``N / 2`` rows (0 when one block wins on both halves). It is at
            least ``envelope - honest``; a maximum over a test set of ``M`` rows inflates by
            roughly ``sqrt(N / (2 M))`` times as much.
    """

    sigmas: torch.Tensor
    blocks: list[str]
    envelope: torch.Tensor
    honest: torch.Tensor
    inflation: torch.Tensor


def block_per_sigma(
    sigmas: Sequence[float] | torch.Tensor,
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    *,
    seed: int = 0,
    weight_decay: float = 1e-4,
) -> BlockPerSigma:
    """The best block at every noise level and the inflation of that per-level maximum, on the
    **training** features only (two-fold cross-fitting with :func:`crossfit_level`'s halves).

    At each level and for each direction (fit on one half, score the other), the block with
    the best score on the scored half is chosen; its score there is the naive value, its score
    on the other half (by the probe fitted on the first) the honest one. Their mean difference
    is the inflation. The probes that made the choice were fitted on the rows the honest value
    reads; a nested split would remove that dependence at three times the probe fits.

    Arguments:
        train_features: ``{block: (S, N, p)}``, the same ``N`` rows for every block.
        train_labels: ``(N,)``, ``N >= 4``, each half holding every class.
    """
    if not train_features:
        raise ValueError("train_features must hold at least one block")
    sig = check_increasing(recorded_sigmas(sigmas))
    names = list(train_features)
    N = len(train_labels)
    for name, F in train_features.items():
        if F.ndim != 3 or F.shape[:2] != (len(sig), N) or N < 4:
            raise ValueError(
                f"train_features[{name!r}] must be (S, N, p) with S = {len(sig)} levels and "
                f"N = {N} >= 4 rows, got {tuple(F.shape)}"
            )
    halves = _halves(train_labels, check_count(seed, "seed", minimum=0))
    correct = torch.stack(
        [_crossfit_correct(train_features[n], train_labels, halves, weight_decay) for n in names]
    )  # (blocks, S, N)
    return _per_sigma(sig, names, correct.double(), halves)


def block_per_sigma_from_crossfit(
    crossfits: dict[str, ProbeCurve], train_labels: torch.Tensor, *, seed: int = 0
) -> BlockPerSigma:
    """:func:`block_per_sigma` from cross-fitted curves already computed with the same
    ``seed`` (:func:`crossfit_level`'s ``curve``, or
    :attr:`lowrank.experiments.network_probe.BlockProbe.crossfit`): the same halves, the same
    per-row correctness, so the same result without fitting a probe again."""
    if not crossfits:
        raise ValueError("crossfits must hold at least one block")
    names = list(crossfits)
    first = crossfits[names[0]]
    N = len(train_labels)
    for name, curve in crossfits.items():
        if curve.correct is None or curve.correct.shape != (len(first.sigmas), N):
            got = None if curve.correct is None else tuple(curve.correct.shape)
            raise ValueError(
                f"crossfits[{name!r}] must keep its (S, N) = ({len(first.sigmas)}, {N}) "
                f"per-row correctness (a crossfit_level curve), got {got}"
            )
        if not torch.equal(curve.sigmas, first.sigmas):
            raise ValueError(f"crossfits[{name!r}] is on another grid than {names[0]!r}")
    halves = _halves(train_labels, check_count(seed, "seed", minimum=0))
    correct = torch.stack([crossfits[n].correct for n in names]).double()
    return _per_sigma(first.sigmas, names, correct, halves)


def _per_sigma(sig, names, correct, halves) -> BlockPerSigma:
    """:class:`BlockPerSigma` from the ``(blocks, S, N)`` cross-fitted correctness."""
    scored = [correct[:, :, rows].mean(-1) for rows in halves]  # (blocks, S) on each half
    naive = torch.stack([s.max(0).values for s in scored])  # (2, S)
    picks = [s.argmax(0) for s in scored]
    levels = torch.arange(len(sig))
    honest = torch.stack([scored[1][picks[0], levels], scored[0][picks[1], levels]])
    full = correct.mean(-1)  # (blocks, S): each block's cross-fitted accuracy on all N rows
    return BlockPerSigma(
        sigmas=sig,
        blocks=[names[i] for i in full.argmax(0).tolist()],
        envelope=full.max(0).values,
        honest=honest.mean(0),
        inflation=(naive - honest).mean(0),
    )
