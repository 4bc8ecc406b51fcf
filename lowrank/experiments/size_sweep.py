"""Generalization against memorization (chapters 7 and 8).

* :func:`assess` -> :class:`Assessment`: for one trained network (a row of the data-size sweep,
  a checkpoint of the training dynamics), its copies, generalization score, Frechet distance in
  the classifier's embedding and probe curves across noise levels with the paired shape test,
  all measured against one :class:`Yardstick`;
* :func:`size_sweep` -> :class:`SizeSweep`: the networks' configurations and the yardstick
  (classifier, real embeddings, test images, sample seeds) that every network of the data-size
  sweep is assessed with, sized by a :class:`SweepBudget`;
* :func:`stopping_checkpoint`: where to stop training, read from the probe curves alone
  (:data:`STOPPING_RULES`).
"""

from __future__ import annotations

import dataclasses

import torch

from lowrank import data as datasets
from lowrank._checks import check_count
from lowrank.measure.copies import (
    COPY_RATIO,
    generalization_score,
    ratios_and_nearest,
    similarity_threshold,
)
from lowrank.measure.distances import frechet_bootstrap, frechet_distance
from lowrank.measure.features import features_across_sigma
from lowrank.measure.levels import best_layer, crossfit_level
from lowrank.measure.probes import probe_across_sigma
from lowrank.measure.stats import VERDICTS, paired_curve_shape
from lowrank.nets.cache import training_images
from lowrank.nets.classifier import (
    ClassifierRecord,
    ClassifierRun,
    ImageClassifier,
    embed,
    load_classifier,
)
from lowrank.nets.runs import UNetRun
from lowrank.theory.sampling import heun_sample

__all__ = [
    "Yardstick",
    "Assessment",
    "assess",
    "STOPPING_RULES",
    "stopping_checkpoint",
    "SweepBudget",
    "SizeSweep",
    "size_sweep",
]


@dataclasses.dataclass(frozen=True, eq=False)  # holds tensors: == would compare them elementwise
class Yardstick:
    """What every network of a comparison is measured against by :func:`assess`.

    Attributes:
        classifier: the embedding of the generalization score and the Frechet distance.
        reference: ``(M, p)`` embeddings of real test images, the Frechet distance's other side.
        heldout: ``(M', p)`` embeddings of other real test images, to calibrate the threshold.
        test: ``(images, labels)`` every probe is scored on.
        seeds: one sample per seed (the same seeds for every network: comparable samples).
        seed: the probing noise and the cross-fitting halves.
        quantile: the calibration's share of real images below the similarity threshold.
    """

    classifier: ImageClassifier
    reference: torch.Tensor
    heldout: torch.Tensor
    test: tuple
    seeds: list
    seed: int = 0
    quantile: float = 0.95


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What :func:`assess` measures of one network.

    Attributes:
        samples: ``(B, C, H, W)`` samples (:func:`lowrank.theory.sampling.heun_sample`), clipped to
            the data's range [-1, 1].
        copy_ratios: ``(B,)`` :func:`copy_ratio` of each sample against the training set.
        nearest: ``(B,)`` the row of each sample's nearest training image (pixels, L2).
        memorized: share of copies (:data:`COPY_RATIO`).
        generalization: :func:`generalization_score` at the calibrated ``threshold``.
        threshold: the similarity of :func:`similarity_threshold` for this training set.
        frechet: :func:`frechet_distance` of the samples' embeddings to the reference's.
        curves: ``{probe set: ProbeCurve}`` test accuracy against sigma.
        peak: the level (index into the grid) chosen by two-fold cross-fitting on the first
            probe set, for every probe set (a probe set of a few images cannot spare a part).
        validation: that cross-fitted curve (:func:`lowrank.measure.levels.crossfit_level`, with
            per-image correctness on all of the first set): accuracies that may steer a choice,
            such as when to stop training, without the test split.
        shapes: ``{probe set: CurveShape}`` at that peak, with paired errors
            (:func:`lowrank.measure.stats.paired_curve_shape` on the same test images at every
            level).
    """

    samples: torch.Tensor
    copy_ratios: torch.Tensor
    nearest: torch.Tensor
    memorized: float
    generalization: float
    threshold: float
    frechet: float
    curves: dict
    peak: int
    validation: object
    shapes: dict


def assess(
    denoiser,
    train_images: torch.Tensor,
    probe_sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    yardstick: Yardstick,
    sigmas,
    layer: str,
    *,
    steps: int = 18,
    device: str | torch.device = "cpu",
) -> Assessment:
    """Sample a trained :class:`lowrank.nets.unet.UNetDenoiser`, score the samples against its
    training set, and probe its features across noise levels: one row of the data-size sweep
    or one checkpoint of the training dynamics.

    Arguments:
        denoiser: the network (its ``network`` is hooked at ``layer``).
        train_images: ``(N, C, H, W)`` the images it was trained on (model range).
        probe_sets: ``{name: (images, labels)}`` labelled images each probe is trained on; the
            first chooses the level by cross-fitting on its images (two halves, each scored by
            the probe fitted on the other).
        yardstick: the classifier, the real embeddings, the test images and the sample seeds.
        sigmas: the probing grid.
        steps: Heun levels of the sampler.
    """
    classifier, seed = yardstick.classifier, yardstick.seed
    samples = heun_sample(denoiser, list(yardstick.seeds), tuple(train_images.shape[1:]),
                          denoiser.sigma_range(), steps=steps, device=device,
                          progress=False)  # fmt: skip
    samples = samples.clamp(-1, 1)  # the data's range, as a sample saved as an image is
    copies = ratios_and_nearest(samples, train_images)
    ratios, nearest = copies.ratios, copies.nearest
    train_embedding = embed(classifier, train_images)
    sample_embedding = embed(classifier, samples)
    threshold = similarity_threshold(yardstick.heldout, train_embedding, yardstick.quantile)
    x_test, y_test = yardstick.test
    names = list(probe_sets)
    x_all = torch.cat([probe_sets[n][0] for n in names] + [x_test]).to(device)
    F = features_across_sigma(denoiser, [layer], x_all, sigmas, seed=seed,
                              progress=False)[layer]  # fmt: skip
    curves, shapes, start = {}, {}, 0
    for name in names:
        images, labels = probe_sets[name]
        part = F[:, start : start + len(images)]
        start += len(images)
        if name == names[0]:
            chosen = crossfit_level(part, labels, seed=seed, sigmas=sigmas)
            peak, validation = chosen.index, chosen.curve
        curves[name] = probe_across_sigma(sigmas, list(part), labels,
                                          list(F[:, -len(x_test):]), y_test)  # fmt: skip
        c = curves[name]
        shapes[name] = paired_curve_shape(c.correct, peak)
    return Assessment(
        samples=samples,
        copy_ratios=ratios,
        nearest=nearest,
        memorized=(ratios < COPY_RATIO).double().mean().item(),
        generalization=generalization_score(sample_embedding, train_embedding, threshold),
        threshold=threshold,
        frechet=frechet_distance(yardstick.reference, sample_embedding),
        curves=curves,
        peak=peak,
        validation=validation,
        shapes=shapes,
    )


STOPPING_RULES = ("last-unimodal", "best-peak")


def stopping_checkpoint(
    verdicts: list[str], peak_accuracy, rule: str = "last-unimodal"
) -> int | None:
    """Where to stop training, from the probe curves of checkpoints in training order.

    Rules:
        ``"last-unimodal"``: the paper's suggestion made precise. The curve is expected to be
            unimodal while the model generalizes and to turn decreasing when it memorizes:
            stop at the last unimodal checkpoint before the first decreasing one that follows
            a unimodal one (the last unimodal checkpoint if none follows). ``None`` when no
            curve is unimodal: the rule has no signal.
        ``"best-peak"``: the checkpoint whose probe does best at its chosen level,
            ``peak_accuracy`` (measured on validation data, never on the test split): the
            quality of the features themselves, with no shape test.

    Both rules choose, so their inputs must come from training data (the probes' validation
    curves), never from the test split.

    Arguments:
        verdicts: :class:`lowrank.measure.stats.CurveShape` verdicts, one per checkpoint.
        peak_accuracy: one accuracy per checkpoint (used by ``"best-peak"``).
    """
    if rule not in STOPPING_RULES:
        raise ValueError(f"rule must be one of {STOPPING_RULES}, got {rule!r}")
    if isinstance(verdicts, str):
        raise TypeError(f"verdicts must be a list, one verdict per checkpoint, got {verdicts!r}")
    verdicts = list(verdicts)
    unknown = sorted({repr(v) for v in verdicts if v not in VERDICTS})
    if unknown:
        raise ValueError(f"verdicts must be among {VERDICTS}, got {', '.join(unknown)}")
    accuracy = torch.as_tensor(peak_accuracy, dtype=torch.float64)
    if len(verdicts) == 0 or accuracy.shape != (len(verdicts),):
        raise ValueError("need one verdict and one peak accuracy per checkpoint, at least one")
    if rule == "best-peak":
        return int(accuracy.argmax())
    unimodal = [i for i, v in enumerate(verdicts) if v == "unimodal"]
    if not unimodal:
        return None
    turn = next((i for i in range(unimodal[0], len(verdicts)) if verdicts[i] == "decreasing"),
                len(verdicts))  # fmt: skip
    return max(i for i in unimodal if i < turn)


@dataclasses.dataclass
class SizeSweep:
    """What every network of the data-size sweep is measured against, built once by
    :func:`size_sweep`: the networks' configurations, the classifier and its embeddings of real
    test images, the probe sets and the sample seeds. Chapter 7 assesses the final networks,
    chapter 8 their snapshots, with the same objects.

    Attributes:
        runs: ``{N: UNetRun}`` one network per subset size.
        classifier: the embedding of the scores; ``classifier_record`` its typed record.
        reference, heldout: embeddings of two disjoint sets of test images (the Frechet
            distance's reference; the generalization score's calibration).
        fixed, test: ``(images, labels)`` of the fixed probe set (the same for every size) and
            of the test images every probe is scored on.
        seeds: one per sample, the same for every network.
        own_images: the most of a subset's own images its own probe is trained on.
    """

    runs: dict
    classifier: ImageClassifier
    classifier_record: ClassifierRecord
    reference: torch.Tensor
    heldout: torch.Tensor
    fixed: tuple
    test: tuple
    seeds: list
    own_images: int
    seed: int

    def subset(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training subset of the network of size ``n``, and its labels."""

        return training_images(self.runs[n], "train")

    def own_probe_set(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``own_images`` of the subset's own images (a seeded class-balanced choice when
        the subset is larger), and their labels."""
        x, y = self.subset(n)
        if len(y) > self.own_images:
            gen = torch.Generator().manual_seed(self.seed + 4)
            keep = datasets.balanced_subset(y, self.own_images, gen)
            x, y = x[keep], y[keep]
        return x, y

    def choose_layer(self, denoiser, sigmas, device="cpu") -> str:
        """The block of ``denoiser`` whose probe peaks highest on a validation fifth of the
        fixed probe set (:func:`lowrank.measure.levels.best_layer`)."""

        x, y = self.fixed
        F = features_across_sigma(denoiser, denoiser.block_names(), x.to(device),
                                  sigmas, seed=self.seed, progress=False)  # fmt: skip
        return best_layer(sigmas, F, y, seed=self.seed).name

    @property
    def yardstick(self) -> Yardstick:
        """What :meth:`assess` measures every network against."""
        return Yardstick(self.classifier, self.reference, self.heldout, self.test, self.seeds,
                         self.seed)  # fmt: skip

    def assess(self, denoiser, n: int, sigmas, layer: str, steps: int = 18, device="cpu"):
        """:func:`assess` of a network trained on the subset of size ``n`` (its final weights
        or a snapshot), probed on the fixed set (which chooses the level) and its own."""
        return assess(denoiser.to(device), self.subset(n)[0],
                      {"fixed": self.fixed, "own": self.own_probe_set(n)}, self.yardstick,
                      sigmas, layer, steps=steps, device=device)  # fmt: skip

    def frechet_bootstrap(self, assessment: Assessment, resamples: int = 200) -> torch.Tensor:
        """The Frechet distance of ``assessment``'s samples to the reference over ``resamples``
        bootstrap resamples of the samples (:func:`lowrank.measure.distances.frechet_bootstrap`
        in the classifier's embedding). The sweep's seed draws the same sample indices for
        every network, whose samples share their seeds, so two checkpoints' bootstraps
        subtract into a paired bootstrap of their difference."""
        if not isinstance(assessment, Assessment):
            raise TypeError(f"assessment must be an Assessment, got {type(assessment).__name__}")
        samples = embed(self.classifier, assessment.samples)
        return frechet_bootstrap(self.reference, samples, resamples, seed=self.seed)


@dataclasses.dataclass(frozen=True)
class SweepBudget:
    """How much :func:`size_sweep` measures each network with.

    Attributes:
        classifier_epochs: training epochs of the embedding classifier.
        samples: samples per network (one seed each, the same for every network).
        probe_fixed_images: labelled training images of the fixed probe set.
        probe_own_images: the most of a subset's own images its own probe is trained on.
        probe_test_images: test images every probe is scored on.
        reference_images, calibration_images: disjoint test images embedded as the Frechet
            distance's reference and as the generalization score's calibration.
    """

    classifier_epochs: int
    samples: int
    probe_fixed_images: int
    probe_own_images: int
    probe_test_images: int
    reference_images: int
    calibration_images: int


def size_sweep(
    sizes,
    common: dict,
    budget: SweepBudget,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SizeSweep:
    """Build the :class:`SizeSweep` of the networks ``UNetRun(**common, train_images=N)`` for
    ``N`` in ``sizes``: load (or train once) the classifier of ``common``'s data set, embed
    two disjoint random sets of test images, draw the probe sets (class-balanced, seeded with
    ``seed + 3`` as chapter 5 draws its own) and the sample seeds, as ``budget`` sizes them."""
    if not isinstance(budget, SweepBudget):
        raise TypeError(f"budget must be a SweepBudget, got {type(budget).__name__}")
    reference_images = check_count(budget.reference_images, "budget.reference_images", minimum=2)
    calibration_images = check_count(budget.calibration_images, "budget.calibration_images")
    runs = {int(n): UNetRun(**common, train_images=int(n)) for n in sorted(sizes)}
    whole = UNetRun(**common)
    x_train, y_train = training_images(whole, "train")
    x_test, y_test = training_images(whole, "test")
    if reference_images + calibration_images > len(x_test):
        raise ValueError(
            f"reference_images + calibration_images must be at most the {len(x_test)} test "
            f"images, got {reference_images} + {calibration_images}"
        )
    trained = load_classifier(
        ClassifierRun(dataset=whole.dataset, size=whole.size, epochs=budget.classifier_epochs),
        progress=False,
    )
    classifier = trained.classifier.to(device)
    order = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed + 7))
    reference = embed(classifier, x_test[order[:reference_images]])
    heldout = embed(classifier, x_test[order[reference_images:][:calibration_images]])
    gen = torch.Generator().manual_seed(seed + 3)
    fixed_rows = datasets.balanced_subset(y_train, budget.probe_fixed_images, gen)
    test_rows = datasets.balanced_subset(y_test, budget.probe_test_images, gen)
    return SizeSweep(
        runs=runs,
        classifier=classifier,
        classifier_record=trained.record,
        reference=reference,
        heldout=heldout,
        fixed=(x_train[fixed_rows], y_train[fixed_rows]),
        test=(x_test[test_rows], y_test[test_rows]),
        seeds=[seed * 1_000_003 + i for i in range(check_count(budget.samples, "samples"))],
        own_images=check_count(budget.probe_own_images, "probe_own_images"),
        seed=seed,
    )
