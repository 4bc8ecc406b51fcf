"""Ensembles under label noise (chapter 6, the paper's Fig. 7): :func:`label_noise_sweep`
flips a share of the training labels and compares the paper's soft vote of probes at
neighbouring noise levels (:func:`lowrank.measure.ensembles.ensemble_probe`) with the single best
probe, the level of each chosen on a validation fifth; the result is a :class:`LabelNoiseSweep`,
which keeps which test images each probe got right, so that the ensemble's gain at each rate is
a paired difference on the same images (:meth:`LabelNoiseSweep.paired_gain`), and so is the
change of the gain from one rate to another (:meth:`LabelNoiseSweep.gain_change`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.std import tqdm

from lowrank._checks import check_count, check_labels, labelled_pair
from lowrank.data import flip_labels
from lowrank.measure.ensembles import ensemble_probe, ensemble_window
from lowrank.measure.levels import best_level
from lowrank.measure.stats import PairedDifference, paired_interval

__all__ = [
    "LabelNoiseSweep",
    "label_noise_sweep",
    "SPLIT_SEED_OFFSET",
]


SPLIT_SEED_OFFSET = (
    1_000_003  # label_noise_sweep's validation split: a stream apart from the flips
)


@dataclass(frozen=True)
class LabelNoiseSweep:
    """Result of :func:`label_noise_sweep`.

    Attributes:
        rates: ``(R,)`` shares of flipped training labels.
        single_correct: ``(R, seeds, M)`` float64 0/1, which test items the probe at the level
            chosen on validation gets right.
        ensemble_correct: ``(R, seeds, M)``, the same for the soft vote over its window.
        center: ``(R, seeds)`` the chosen level (index into the grid).
    """

    rates: torch.Tensor
    single_correct: torch.Tensor
    ensemble_correct: torch.Tensor
    center: torch.Tensor

    @property
    def single(self) -> torch.Tensor:
        """``(R, seeds)`` test accuracy of the single probe."""
        return self.single_correct.mean(2)

    @property
    def ensemble(self) -> torch.Tensor:
        """``(R, seeds)`` test accuracy of the soft vote."""
        return self.ensemble_correct.mean(2)

    def paired_gain(self, level: float = 0.95) -> list[PairedDifference]:
        """The ensemble's gain over the single probe at each rate, paired on the test items:
        each item's correctness averaged over the seeds (flips), then
        :func:`lowrank.measure.stats.paired_interval` of ensemble against single over the
        ``M`` items. The interval covers the sampling of test items given the flips; unlike an
        interval over a few flips, it is not empty when every flip gives the same probes."""
        return [
            paired_interval(e.mean(0), s.mean(0), level)
            for e, s in zip(self.ensemble_correct, self.single_correct, strict=True)
        ]

    def gain_change(
        self, from_rate: float, to_rate: float, level: float = 0.95
    ) -> PairedDifference:
        """The gain at ``to_rate`` minus the gain at ``from_rate``, paired on the test items:
        each item's gain (ensemble minus single, averaged over the seeds) at one rate against
        the same item's at the other (:func:`lowrank.measure.stats.paired_interval`). Does the
        ensemble help more when more labels are wrong? Both rates must be rates of the sweep."""
        per_item = (self.ensemble_correct - self.single_correct).mean(1)  # (R, M)
        to, start = self._rate_index(to_rate, "to_rate"), self._rate_index(from_rate, "from_rate")
        return paired_interval(per_item[to], per_item[start], level)

    def _rate_index(self, rate: float, name: str) -> int:
        matches = (self.rates - float(rate)).abs() < 1e-12
        if int(matches.sum()) != 1:
            raise ValueError(f"{name} = {rate!r} is not a rate of the sweep {self.rates.tolist()}")
        return int(matches.nonzero()[0, 0])


def label_noise_sweep(
    train: tuple[Sequence[torch.Tensor], torch.Tensor],
    test: tuple[Sequence[torch.Tensor], torch.Tensor],
    rates: Sequence[float],
    seeds: Sequence[int],
    *,
    width: int = 2,
    validation: float = 0.2,
    weight_decay: float = 1e-4,
    progress: bool = False,
) -> LabelNoiseSweep:
    """The single best probe against the ensemble (:func:`ensemble_probe`) when a share of the
    training labels is wrong (the paper's appendix Table 1).

    For each rate and seed: ``rate`` of the training labels are flipped to another class
    (:func:`lowrank.data.flip_labels`, generator seeded with the seed); the level is chosen
    where a probe trained on the other ``1 - validation`` of the training rows does best on the
    held-out ``validation`` rows, **with their flipped labels** (clean labels are what the
    experiment says one does not have; for symmetric noise the noisy validation accuracy is an
    increasing function of the clean one, so its argmax is the same in expectation); then the
    probe at that level and the soft vote over :func:`ensemble_window` of it are trained on all
    the training rows and scored on the clean test labels.

    Arguments:
        train, test: ``(features, labels)``: ``S`` tensors ``(N, p)`` (``(M, p)`` for the test
            set), one per level, and the ``(N,)`` (``(M,)``) clean labels.
        rates: shares of flipped labels in [0, 1]; seeds: one flip (and split) per seed.
    """
    train_features, train_labels = labelled_pair(train, "train")
    test_features, test_labels = labelled_pair(test, "test")
    S = len(train_features)
    if S != len(test_features):
        raise ValueError("need one test feature set per train feature set")
    K = check_labels(train_labels, "train_labels")
    seeds = [check_count(seed, "seeds[i]", minimum=0) for seed in seeds]
    if not seeds or not len(rates):
        raise ValueError("rates and seeds must each hold at least one value")
    shape = (len(rates), len(seeds))
    single = torch.zeros((*shape, len(test_labels)), dtype=torch.float64)
    ensemble = torch.zeros_like(single)
    center = torch.zeros(shape, dtype=torch.long)
    steps = [(r, j) for r in range(len(rates)) for j in range(len(seeds))]
    for r, j in tqdm(steps, desc="label noise", disable=not progress):
        noisy = flip_labels(train_labels, rates[r], torch.Generator().manual_seed(seeds[j]), K)
        # the split needs its own stream: seeded like the flips, randperm would hold out exactly
        # the rows that were flipped first, all of them wrong at any rate above `validation`
        split_seed = seeds[j] + SPLIT_SEED_OFFSET
        best = best_level(train_features, noisy, validation, split_seed).index
        window = ensemble_window(best, S, width)
        accuracy = ensemble_probe(
            train_features, noisy, test_features, test_labels, window, weight_decay
        )
        single[r, j] = accuracy.single_correct[window.index(best)]
        ensemble[r, j] = accuracy.vote_correct
        center[r, j] = best
    return LabelNoiseSweep(torch.as_tensor(rates, dtype=torch.float64), single, ensemble, center)
