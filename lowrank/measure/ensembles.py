r"""The paper's soft vote of probes at neighbouring noise levels (appendix Tables 1-2).

* :func:`ensemble_window`: the best level and its neighbours, kept inside the grid;
* :func:`ensemble_probe`: one logistic probe per member level, their test logits averaged; the
  result, an :class:`EnsembleAccuracy`, keeps which test items each member and the vote got
  right, so that the vote's gain over one member is a paired difference on the same items
  (:func:`lowrank.measure.stats.paired_interval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lowrank._checks import check_count, check_labels
from lowrank.measure.probes import logistic_logits

__all__ = ["ensemble_window", "EnsembleAccuracy", "ensemble_probe"]


def ensemble_window(center: int, levels: int, width: int = 2) -> list[int]:
    """The ``2 width + 1`` consecutive grid indices around ``center`` (the paper's ensemble:
    the best level and ``width`` neighbours on each side), shifted to stay inside a grid of
    ``levels`` points, so that a peak at an end still gets ``2 width + 1`` members."""
    levels = check_count(levels, "levels")
    width = check_count(width, "width", minimum=0)
    if not 0 <= center < levels:
        raise ValueError(f"center must be an index in [0, {levels - 1}], got {center}")
    if 2 * width + 1 > levels:
        raise ValueError(f"a window of {2 * width + 1} levels does not fit a grid of {levels}")
    start = min(max(center - width, 0), levels - (2 * width + 1))
    return list(range(start, start + 2 * width + 1))


@dataclass(frozen=True)
class EnsembleAccuracy:
    """What :func:`ensemble_probe` returns.

    Attributes:
        single_correct: ``(len(members), M)`` float64 0/1, which test items each voting level's
            probe alone gets right.
        vote_correct: ``(M,)`` float64 0/1, which the averaged logits get right.
    """

    single_correct: torch.Tensor
    vote_correct: torch.Tensor

    @property
    def single(self) -> torch.Tensor:
        """``(len(members),)`` test accuracy of each member alone, in [0, 1]."""
        return self.single_correct.mean(1)

    @property
    def vote(self) -> torch.Tensor:
        """0-d test accuracy of the averaged logits, in [0, 1]."""
        return self.vote_correct.mean()


def ensemble_probe(
    train_features: Sequence[torch.Tensor],
    train_labels: torch.Tensor,
    test_features: Sequence[torch.Tensor],
    test_labels: torch.Tensor,
    members: Sequence[int],
    weight_decay: float = 1e-4,
) -> EnsembleAccuracy:
    """Soft voting across noise levels (the paper's ensemble, appendix Tables 1-2): one logistic
    probe per level in ``members``, their test logits averaged.

    Arguments:
        train_features, test_features: ``S`` tensors ``(N, p)`` and ``(M, p)``, one per level.
        members: the levels (indices into the grid) that vote, e.g. :func:`ensemble_window`.
    """
    if len(train_features) != len(test_features):
        raise ValueError("need one test feature set per train feature set")
    members = [int(i) for i in members]
    if not members or not all(0 <= i < len(train_features) for i in members):
        raise ValueError(f"members must be indices in [0, {len(train_features) - 1}]")
    K = check_labels(train_labels, "train_labels")
    check_labels(test_labels, "test_labels", K=K)
    logits = [
        logistic_logits(train_features[i], train_labels, test_features[i], weight_decay)[0]
        for i in members
    ]
    single = torch.stack([(z.argmax(1) == test_labels).double() for z in logits])
    vote = torch.stack(logits).mean(0)
    return EnsembleAccuracy(single, (vote.argmax(1) == test_labels).double())
