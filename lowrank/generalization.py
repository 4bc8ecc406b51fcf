r"""Does a diffusion model copy its training images or make new ones? Scores that need no
downloaded weights.

* :func:`nearest_neighbours`: the ``k`` nearest reference rows of every query, by L2 distance or
  cosine similarity, streamed over chunks of the references (memory ``O(B chunk)`` whatever
  their number, as :class:`lowrank.denoisers.EmpiricalDenoiser` streams a training set);
* :func:`copy_ratio`, :func:`memorized_fraction`: a sample is a copy when its nearest training
  image is much nearer than the second nearest, :math:`d_1 / d_2 < 1/3` (the rule of Yoon et al.
  2023 and Bonnaire et al. 2025, on pixels);
* :class:`ImageClassifier`, :class:`ClassifierRun`, :func:`load_classifier`: a small
  convolutional classifier of the data set, trained here once and cached, whose penultimate
  layer is the embedding of the two scores below (the paper uses SSCD, a copy-detection network
  trained on ImageNet, and FID uses Inception; neither can be downloaded here);
* :func:`similarity_threshold`, :func:`generalization_score`: the paper's generalization score,
  the fraction of samples whose nearest training image (cosine similarity of embeddings) is
  **less** similar than a threshold; the paper's threshold (0.6) belongs to SSCD's embedding, so
  ours is calibrated: the similarity that a share ``quantile`` of real held-out images stays
  below, with the same training set;
* :func:`frechet_distance`: the Frechet distance between Gaussians fitted to two sets of
  embeddings, computed by ``torchmetrics`` (an FID stand-in: not comparable to Inception FID);
* :func:`assess`: all of the above, and the probe curves across noise levels, for one trained
  network (a row of the data-size sweep, a checkpoint of the training dynamics);
* :func:`size_sweep` -> :class:`SizeSweep`: the classifier, real embeddings, probe sets and
  sample seeds that every network of the data-size sweep is assessed with (chapters 7 and 8);
* :func:`rank_correlation`: Spearman's correlation with a bootstrap interval (Frechet distance
  against peak probe accuracy over checkpoints);
* :func:`stopping_checkpoint`: where to stop training, read from the probe curves alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from . import data as datasets
from ._checks import check_count, check_real
from .models import cache_root
from .stats import VERDICTS
from .train import fingerprint, fit

__all__ = [
    "nearest_neighbours",
    "copy_ratio",
    "memorized_fraction",
    "ImageClassifier",
    "ClassifierRun",
    "load_classifier",
    "embed",
    "similarity_threshold",
    "generalization_score",
    "frechet_distance",
    "Assessment",
    "assess",
    "SizeSweep",
    "size_sweep",
    "rank_correlation",
    "stopping_checkpoint",
    "STOPPING_RULES",
]

COPY_RATIO = 1 / 3  # d1 / d2 below this: a copy (Yoon et al. 2023; Bonnaire et al. 2025)


def _rows(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", x)
        raise ValueError(f"{name} must be a non-empty (N, ...) tensor, got {shape}")
    if not bool(torch.all(torch.isfinite(x))):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return x.flatten(1)


def nearest_neighbours(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int = 1,
    metric: str = "l2",
    chunk_size: int = 8192,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest references of every query, streamed over chunks of the references.

    Arguments:
        queries, references: ``(B, ...)`` and ``(N, ...)``, flattened to rows of one length.
        k: neighbours per query, at most ``N``.
        metric: ``"l2"``: distances :math:`\\|q - r\\| / \\sqrt{n}` (root mean square over the
            ``n`` coordinates), ascending; ``"cosine"``: cosine similarities, descending.
        chunk_size: references compared at once.
        dtype: the computation's dtype (float64 by default: :math:`\\|q\\|^2 - 2 q^\\top r +
            \\|r\\|^2` cancels badly in float32 for near-copies, the very case that matters).

    Returns:
        ``(values, indices)``, both ``(B, k)``: distances or similarities, and rows of
        ``references``.
    """
    q, r = _rows(queries, "queries").to(dtype), _rows(references, "references")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} coordinates, references {r.shape[1]}")
    k = check_count(k, "k")
    if k > len(r):
        raise ValueError(f"k must be at most the {len(r)} references, got {k}")
    if metric not in ("l2", "cosine"):
        raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}")
    chunk_size = check_count(chunk_size, "chunk_size")
    largest = metric == "cosine"
    if largest:
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-30)
    q_sq = q.square().sum(1, keepdim=True)
    best = torch.full((len(q), k), -math.inf if largest else math.inf, dtype=dtype)
    where = torch.zeros((len(q), k), dtype=torch.long)
    for start in range(0, len(r), chunk_size):
        R = r[start : start + chunk_size].to(q.device, dtype)
        if largest:
            score = q @ (R / R.norm(dim=1, keepdim=True).clamp_min(1e-30)).T
        else:  # squared distances, clamped: rounding can make a copy's slightly negative
            score = (q_sq - 2 * q @ R.T + R.square().sum(1)).clamp_min(0)
        values = torch.cat([best, score], 1)
        index = torch.cat([where, torch.arange(start, start + len(R)).expand(len(q), -1)], 1)
        best, pick = values.topk(k, dim=1, largest=largest)
        where = index.gather(1, pick)
    if not largest:
        best = (best / q.shape[1]).sqrt()
    return best, where


def copy_ratio(samples: torch.Tensor, train: torch.Tensor, chunk_size: int = 8192) -> torch.Tensor:
    """``(B,)`` ratios :math:`d_1 / d_2` of every sample's distances to its nearest and second
    nearest training image (pixels, L2). Near 0: a copy of one training image; near 1: as close
    to two of them, which a copy never is.

    Duplicates: the neighbours are **distinct** training images. A training image that occurs
    twice is one image to copy; counting it twice would make its exact copy equidistant from
    its "two" nearest images (ratio 0/0, read as 1: "not a copy"). So repeated rows are
    merged first: the ratio of a near copy is small however often its image repeats."""
    return _ratios_and_nearest(samples, train, chunk_size)[0]


def _ratios_and_nearest(samples, train, chunk_size=8192) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`copy_ratio` and the row of every sample's nearest training image (its first
    occurrence, for a repeated image)."""
    rows = _rows(train, "train")
    distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
    if len(distinct) < 2:
        raise ValueError(
            f"a copy ratio needs at least 2 distinct training images, got {len(distinct)}"
        )
    # the first row of `train` holding each distinct image
    first = torch.full((len(distinct),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), reduce="amin")
    d, where = nearest_neighbours(samples, distinct, k=2, chunk_size=chunk_size)
    return d[:, 0] / d[:, 1].clamp_min(1e-30), first.to(where.device)[where[:, 0]]


def memorized_fraction(
    samples: torch.Tensor, train: torch.Tensor, ratio: float = COPY_RATIO, chunk_size: int = 8192
) -> float:
    """The share of samples that are copies, :func:`copy_ratio` below ``ratio`` (1/3)."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must lie in (0, 1), got {ratio}")
    return (copy_ratio(samples, train, chunk_size) < ratio).double().mean().item()


class ImageClassifier(nn.Module):
    """A small convolutional classifier; its pooled last convolution is the embedding.

    Three 3x3 convolutions (``width``, ``2 width``, ``4 width`` channels; the last two of stride
    2) with group normalization and SiLU, averaged over space, then a linear layer to the class
    logits. ``embed(x)`` returns the ``4 width`` pooled channels, ``forward(x)`` the logits.
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, width: int = 32):
        super().__init__()
        self.config = {"in_channels": in_channels, "classes": classes, "width": width}
        layers, channels = [], in_channels
        for out, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            layers += [nn.Conv2d(channels, out, 3, stride, 1), nn.GroupNorm(8, out), nn.SiLU()]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclasses.dataclass(frozen=True)
class ClassifierRun:
    """Everything that defines one trained :class:`ImageClassifier`: trained on the whole
    training split of ``dataset`` at side ``size`` (the diffusion models' input), Adam, cross
    entropy. Cached as ``<cache>/classifier-<dataset>-<size>px-<key>/`` (``model.safetensors``
    and ``run.json`` with the test accuracy), like :class:`lowrank.models.UNetRun`."""

    dataset: str = "fashion-mnist"
    size: int | None = 16
    width: int = 32
    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self):
        if self.dataset not in ("fashion-mnist", "cifar10"):
            raise ValueError(f"dataset must be 'fashion-mnist' or 'cifar10', got {self.dataset!r}")
        check_count(self.epochs, "epochs")
        check_count(self.width, "width", minimum=8)

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder(self, cache: str | Path | None = None) -> Path:
        name = f"classifier-{self.dataset}-{self.size or 'native'}px-{self.key()}"
        return cache_root(cache) / name


def _split(run: ClassifierRun, split: str, root) -> tuple[torch.Tensor, torch.Tensor]:
    load = datasets.load_fashion_mnist if run.dataset == "fashion-mnist" else datasets.load_cifar10
    images, labels = load(split, root=root)
    return datasets.to_model_range(images, run.size), labels


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def load_classifier(
    run: ClassifierRun | None = None,
    cache: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
) -> tuple[ImageClassifier, dict]:
    """The classifier of ``run`` (default ``ClassifierRun()``) in eval mode and its record;
    trained into the cache first when missing (a minute on 2 CPU cores for the default).
    Weights are read from safetensors only."""
    from safetensors.torch import load_file, save_file

    run = run or ClassifierRun()
    folder = run.folder(cache)
    record_path = folder / "run.json"
    x_train, y_train = _split(run, "train", data_root)
    model = _fresh(run, x_train.shape[1], int(y_train.max()) + 1)
    if record_path.exists():
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval(), json.loads(record_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rows = torch.arange(len(x_train))

    def loss(net: ImageClassifier, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])

    config = {"classifier": json.dumps(dataclasses.asdict(run), sort_keys=True),
              "x0": fingerprint(x_train)}  # fmt: skip
    start = time.perf_counter()
    losses = fit(model, loss, rows, run.epochs, config, lr=run.lr, batch_size=run.batch_size,
                 generator=torch.Generator().manual_seed(run.seed + 1),
                 checkpoint=folder / "train.pt", progress=progress,
                 desc="classifier epochs")  # fmt: skip
    model.eval()
    x_test, y_test = _split(run, "test", data_root)
    accuracy = (_batched(model, x_test).argmax(1) == y_test).double().mean().item()
    save_file(model.state_dict(), folder / "model.safetensors")
    record = {"config": dataclasses.asdict(run), "losses": losses, "test_accuracy": accuracy,
              "seconds_this_call": time.perf_counter() - start}  # fmt: skip
    tmp = record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, record_path)
    return model, record


def _fresh(run: ClassifierRun, in_channels: int, classes: int) -> ImageClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        return ImageClassifier(in_channels, classes, run.width)


def embed(
    classifier: ImageClassifier, images: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """``(N, 4 width)`` float64 embeddings of ``(N, C, H, W)`` images in the model range."""
    p = next(classifier.parameters())
    return _batched(lambda x: classifier.embed(x.to(p)).double().cpu(), images, batch_size)


def similarity_threshold(
    heldout: torch.Tensor, train: torch.Tensor, quantile: float = 0.95
) -> float:
    """The cosine similarity that a share ``quantile`` of real held-out images stays below, each
    with its most similar training image: above it, a sample is nearer a training image than
    almost any real unseen image is. Embeddings in, ``(M, p)`` and ``(N, p)``."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    nearest, _ = nearest_neighbours(heldout, train, metric="cosine")
    return torch.quantile(nearest[:, 0], quantile).item()


def generalization_score(samples: torch.Tensor, train: torch.Tensor, threshold: float) -> float:
    """The share of samples whose most similar training image (cosine similarity of
    embeddings) stays at or below ``threshold``: new images rather than copies."""
    threshold = check_real(threshold, "threshold", -1.0, 1.0)  # a cosine similarity
    nearest, _ = nearest_neighbours(samples, train, metric="cosine")
    return (nearest[:, 0] <= threshold).double().mean().item()


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    r"""Frechet distance between Gaussians fitted to two feature sets ``(N_a, p)`` and
    ``(N_b, p)``: :math:`\|\mu_a - \mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b -
    2 (\Sigma_a \Sigma_b)^{1/2})` with unbiased covariances, by ``torchmetrics``' FID on the
    features themselves (its statistics in float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = _rows(features_a, "features_a"), _rows(features_b, "features_b")
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"need two sets of >= 2 rows of one width, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    fid = FrechetInceptionDistance(feature=_Features(), input_img_size=(a.shape[1],))
    fid.update(a.double(), real=True)
    fid.update(b.double(), real=False)
    return fid.compute().item()


class _Features(nn.Module):
    """The identity on precomputed features, as torchmetrics' custom feature extractor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What :func:`assess` measures of one network.

    Attributes:
        samples: ``(B, C, H, W)`` samples (:func:`lowrank.sampling.heun_sample`), clipped to
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
        validation: that cross-fitted curve (:func:`lowrank.probes.crossfit_level`, with
            per-image correctness on all of the first set): accuracies that may steer a choice,
            such as when to stop training, without the test split.
        shapes: ``{probe set: CurveShape}`` at that peak, with paired errors
            (:func:`lowrank.stats.paired_curve_shape` on the same test images at every level).
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
    classifier: ImageClassifier,
    reference: torch.Tensor,
    heldout: torch.Tensor,
    probe_sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    test: tuple[torch.Tensor, torch.Tensor],
    sigmas,
    layer: str,
    seeds,
    steps: int = 18,
    quantile: float = 0.95,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Assessment:
    """Sample a trained :class:`lowrank.nets.UNetDenoiser`, score the samples against its
    training set, and probe its features across noise levels: one row of the data-size sweep
    or one checkpoint of the training dynamics.

    Arguments:
        denoiser: the network (``denoiser.unet`` is hooked at ``layer``).
        train_images: ``(N, C, H, W)`` the images it was trained on (model range).
        classifier: the embedding of the generalization score and the Frechet distance.
        reference: ``(M, p)`` embeddings of real test images, the Frechet distance's other side.
        heldout: ``(M', p)`` embeddings of other real test images, to calibrate the threshold.
        probe_sets: ``{name: (images, labels)}`` labelled images each probe is trained on; the
            first chooses the level by cross-fitting on its images (two halves, each scored by
            the probe fitted on the other).
        test: ``(images, labels)`` every probe is scored on.
        sigmas: the probing grid.
        seeds: one sample per seed (the same seeds for every network: comparable samples).
        steps, quantile: Heun levels; the calibration's share of real images below threshold.
        seed: the probing noise and the cross-fitting halves.
    """
    from .features import features_across_sigma
    from .probes import crossfit_level, probe_across_sigma
    from .sampling import heun_sample
    from .stats import paired_curve_shape

    sigma_min, sigma_max = denoiser.log_sigmas[[0, -1]].exp().tolist()
    samples = heun_sample(denoiser, list(seeds), tuple(train_images.shape[1:]), sigma_min,
                          sigma_max, steps, device=device, progress=False)  # fmt: skip
    samples = samples.clamp(-1, 1)  # the data's range, as a sample saved as an image is
    ratios, nearest = _ratios_and_nearest(samples, train_images)
    train_embedding = embed(classifier, train_images)
    sample_embedding = embed(classifier, samples)
    threshold = similarity_threshold(heldout, train_embedding, quantile)
    x_test, y_test = test
    names = list(probe_sets)
    x_all = torch.cat([probe_sets[n][0] for n in names] + [x_test]).to(device)
    F = features_across_sigma(denoiser.unet, denoiser, [layer], x_all, sigmas, seed=seed,
                              progress=False)[layer]  # fmt: skip
    curves, shapes, start = {}, {}, 0
    for name in names:
        images, labels = probe_sets[name]
        part = F[:, start : start + len(images)]
        start += len(images)
        if name == names[0]:
            peak, validation = crossfit_level(part, labels, seed=seed, sigmas=sigmas)
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
        frechet=frechet_distance(reference, sample_embedding),
        curves=curves,
        peak=peak,
        validation=validation,
        shapes=shapes,
    )


def rank_correlation(
    x, y, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman's rank correlation of two paired sequences and a bootstrap percentile interval
    at ``level`` (pairs resampled with replacement, ``resamples`` times, seeded).

    Ties get their average rank. Returns ``(rho, low, high)``; a resample whose ranks are all
    tied in ``x`` or ``y`` has no correlation and is left out of the interval.
    """
    a = torch.as_tensor(x, dtype=torch.float64).flatten()
    b = torch.as_tensor(y, dtype=torch.float64).flatten()
    if a.shape != b.shape or len(a) < 3:
        raise ValueError(f"need two paired sequences of >= 3 values, got {len(a)} and {len(b)}")
    if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
        raise ValueError("x and y must be finite")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rho = _spearman(a[None], b[None])[0].item()
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(a), (check_count(resamples, "resamples"), len(a)), generator=gen)
    boot = _spearman(a[rows], b[rows])
    boot = boot[torch.isfinite(boot)]
    tail = (1 - level) / 2
    if len(boot) == 0:
        return rho, math.nan, math.nan
    low, high = torch.quantile(boot, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return rho, low.item(), high.item()


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last dimension (ties share the mean of their positions)."""
    order = v.argsort(-1)
    position = torch.empty_like(v)
    position.scatter_(-1, order, torch.arange(v.shape[-1], dtype=v.dtype).expand_as(v))
    # average over ties: for each value, the mean position of the values equal to it
    equal = (v[..., :, None] == v[..., None, :]).to(v.dtype)
    return (equal @ position[..., None])[..., 0] / equal.sum(-1)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of the ranks; NaN where a row's ranks are all tied."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    den = (ra.square().sum(-1) * rb.square().sum(-1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(-1) / den.clamp_min(1e-300), math.nan)


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
        verdicts: :class:`lowrank.probes.CurveShape` verdicts, one per checkpoint.
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
        classifier: the embedding of the scores; ``classifier_record`` its ``run.json``.
        reference, heldout: embeddings of two disjoint sets of test images (the Frechet
            distance's reference; the generalization score's calibration).
        fixed, test: ``(images, labels)`` of the fixed probe set (the same for every size) and
            of the test images every probe is scored on.
        seeds: one per sample, the same for every network.
        own_images: the most of a subset's own images its own probe is trained on.
    """

    runs: dict
    classifier: ImageClassifier
    classifier_record: dict
    reference: torch.Tensor
    heldout: torch.Tensor
    fixed: tuple
    test: tuple
    seeds: list
    own_images: int
    seed: int

    def subset(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training subset of the network of size ``n``, and its labels."""
        from .models import training_images

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
        fixed probe set (:func:`lowrank.probes.best_layer`)."""
        from .features import features_across_sigma
        from .probes import best_layer

        x, y = self.fixed
        F = features_across_sigma(denoiser.unet, denoiser, denoiser.block_names(), x.to(device),
                                  sigmas, seed=self.seed, progress=False)  # fmt: skip
        return best_layer(sigmas, F, y, seed=self.seed)[0]

    def assess(self, denoiser, n: int, sigmas, layer: str, steps: int = 18, device="cpu"):
        """:func:`assess` of a network trained on the subset of size ``n`` (its final weights
        or a snapshot), probed on the fixed set (which chooses the level) and its own."""
        return assess(denoiser.to(device), self.subset(n)[0], self.classifier, self.reference,
                      self.heldout, {"fixed": self.fixed, "own": self.own_probe_set(n)},
                      self.test, sigmas, layer, self.seeds, steps=steps, seed=self.seed,
                      device=device)  # fmt: skip


def size_sweep(
    sizes,
    common: dict,
    classifier_epochs: int,
    samples: int,
    probe_fixed_images: int,
    probe_own_images: int,
    probe_test_images: int,
    reference_images: int,
    calibration_images: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SizeSweep:
    """Build the :class:`SizeSweep` of the networks ``UNetRun(**common, train_images=N)`` for
    ``N`` in ``sizes``: load (or train once) the classifier of ``common``'s data set, embed
    two disjoint random sets of test images, draw the probe sets (class-balanced, seeded with
    ``seed + 3`` as chapter 5 draws its own) and the sample seeds."""
    from .models import UNetRun, training_images

    runs = {int(n): UNetRun(**common, train_images=int(n)) for n in sorted(sizes)}
    whole = UNetRun(**common)
    x_train, y_train = training_images(whole, "train")
    x_test, y_test = training_images(whole, "test")
    if reference_images + calibration_images > len(x_test):
        raise ValueError(
            f"reference_images + calibration_images must be at most the {len(x_test)} test "
            f"images, got {reference_images} + {calibration_images}"
        )
    classifier, record = load_classifier(
        ClassifierRun(dataset=whole.dataset, size=whole.size, epochs=classifier_epochs),
        progress=False,
    )
    classifier = classifier.to(device)
    order = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed + 7))
    reference = embed(classifier, x_test[order[:reference_images]])
    heldout = embed(classifier, x_test[order[reference_images:][:calibration_images]])
    gen = torch.Generator().manual_seed(seed + 3)
    fixed_rows = datasets.balanced_subset(y_train, probe_fixed_images, gen)
    test_rows = datasets.balanced_subset(y_test, probe_test_images, gen)
    return SizeSweep(
        runs=runs,
        classifier=classifier,
        classifier_record=record,
        reference=reference,
        heldout=heldout,
        fixed=(x_train[fixed_rows], y_train[fixed_rows]),
        test=(x_test[test_rows], y_test[test_rows]),
        seeds=[seed * 1_000_003 + i for i in range(check_count(samples, "samples"))],
        own_images=check_count(probe_own_images, "probe_own_images"),
        seed=seed,
    )
