"""The embedding classifier: :class:`ImageClassifier`, a small convolutional classifier of the
data set, named by a :class:`ClassifierRun`, trained here once and cached by
:func:`load_classifier` (safetensors and JSON). Its penultimate layer (:func:`embed`) is the
embedding of :mod:`lowrank.measure.copies`' generalization score and of the Frechet distance.
The paper uses SSCD, a copy-detection network trained on ImageNet, and FID uses Inception;
neither can be downloaded here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lowrank import data as datasets
from lowrank._checks import check_count
from lowrank.nets.runs import cache_root
from lowrank.nets.train import Optimization, fingerprint, fit

__all__ = [
    "ImageClassifier",
    "ClassifierRun",
    "ClassifierRecord",
    "TrainedClassifier",
    "load_classifier",
    "embed",
]


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
    and ``run.json`` with the test accuracy), like :class:`lowrank.nets.runs.UNetRun`."""

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


@dataclass(frozen=True)
class ClassifierRecord:
    """A trained classifier's ``run.json``, typed.

    Attributes:
        config: the run (:class:`ClassifierRun` as a dict).
        losses: the mean training loss of each epoch.
        test_accuracy: its accuracy on the test split.
        seconds_this_call: the training time.
    """

    config: dict
    losses: tuple[float, ...]
    test_accuracy: float
    seconds_this_call: float

    @classmethod
    def from_json(cls, record: dict) -> ClassifierRecord:
        """The typed form of the classifier's ``run.json``."""
        return cls(record["config"], tuple(record["losses"]), record["test_accuracy"],
                   record["seconds_this_call"])  # fmt: skip


@dataclass(frozen=True)
class TrainedClassifier:
    """A classifier from the cache, in eval mode, and its record."""

    classifier: ImageClassifier
    record: ClassifierRecord


def load_classifier(
    run: ClassifierRun | None = None,
    cache: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
) -> TrainedClassifier:
    """The classifier of ``run`` (default ``ClassifierRun()``) in eval mode and its record;
    trained into the cache first when missing (a minute on 2 CPU cores for the default).
    Weights are read from safetensors only."""
    run = run or ClassifierRun()
    folder = run.folder(cache)
    record_path = folder / "run.json"
    x_train, y_train = _split(run, "train", data_root)
    model = _fresh(run, x_train.shape[1], int(y_train.max()) + 1)
    if record_path.exists():
        model.load_state_dict(load_file(folder / "model.safetensors"))
        record = ClassifierRecord.from_json(json.loads(record_path.read_text()))
        return TrainedClassifier(model.eval(), record)
    folder.mkdir(parents=True, exist_ok=True)
    rows = torch.arange(len(x_train))

    def loss(net: ImageClassifier, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])

    config = {"classifier": json.dumps(dataclasses.asdict(run), sort_keys=True),
              "x0": fingerprint(x_train)}  # fmt: skip
    start = time.perf_counter()
    losses = fit(model, loss, rows, config,
                 Optimization(run.epochs, lr=run.lr, batch_size=run.batch_size),
                 generator=torch.Generator().manual_seed(run.seed + 1),
                 checkpoint=folder / "train.pt",
                 progress="classifier epochs" if progress else None)  # fmt: skip
    model.eval()
    x_test, y_test = _split(run, "test", data_root)
    accuracy = (_batched(model, x_test).argmax(1) == y_test).double().mean().item()
    save_file(model.state_dict(), folder / "model.safetensors")
    record = {"config": dataclasses.asdict(run), "losses": losses, "test_accuracy": accuracy,
              "seconds_this_call": time.perf_counter() - start}  # fmt: skip
    tmp = record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, record_path)
    return TrainedClassifier(model, ClassifierRecord.from_json(record))


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
