"""Trained diffusion models, cached by configuration: a model is trained once and every chapter
(and every re-rendering) loads it.

A :class:`UNetRun` names everything that defines a trained network: data set, resolution,
widths, epochs, optimizer settings, seed, and the epochs at which an EMA snapshot is kept. Its
:meth:`UNetRun.key` (a SHA-256 of that configuration) names the folder::

    <cache>/unet-<dataset>-<size>px-<key>/            (a diffusion model)
    <cache>/dae-<dataset>-<size>px-<key>/             (noise_levels given: a denoising autoencoder)
        run.json          configuration, loss per epoch, wall time, images/s, environment
        ema/              final EMA weights, diffusers format (config.json + safetensors)
        ema-epoch<e>/     EMA weights after e epochs, for each snapshot epoch
        train.pt          fit's checkpoint: an interrupted run resumes from its last epoch

``<cache>`` is ``cache`` when given, else ``$LOWRANK_CACHE`` (the Makefile sets
``_build/models``), else ``~/.cache/lowrank/models``. Weights are read from safetensors and the
record from JSON, so loading a cached model never unpickles anything. ``python -m lowrank train``
trains one from the shell.
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

from . import data as datasets
from ._checks import check_count
from .nets import EDMUNetDenoiser, UNetDenoiser
from .train import _distributed, fingerprint, fit

__all__ = [
    "UNetRun",
    "cache_root",
    "training_images",
    "train_unet",
    "load_unet",
    "is_cached",
    "initial_network",
    "ema_init_weight",
]

DATASETS = ("fashion-mnist", "cifar10")
PARAMETERIZATIONS = {"ddpm": UNetDenoiser, "edm": EDMUNetDenoiser}
_FORMAT = 1  # bump when the folder layout or the training recipe changes meaning


@dataclasses.dataclass(frozen=True)
class UNetRun:
    """Everything that defines one trained ``UNetDenoiser.small`` (DDPM epsilon loss, Adam,
    EMA of the weights).

    With ``noise_levels`` the same network and loss are trained at those noise levels only, one
    drawn uniformly per image: a denoising autoencoder (DAE) at one level, or the paper's
    multi-level DAE (Fig. 13, Table 3) at a few. Without it (``None``), the diffusion model:
    a timestep uniform in ``0 .. T-1`` per image.

    Attributes:
        dataset: ``"fashion-mnist"`` or ``"cifar10"``.
        size: image side after :func:`lowrank.data.to_model_range` (``None``: native).
        train_images: a seeded class-balanced subset of the training split of this size
            (``None``: all of it).
        channels, layers_per_block: the UNet's widths and depth (see ``UNetDenoiser.small``).
        epochs, lr, batch_size, ema_decay: the optimization.
        seed: seeds the initialization (``seed``), the subset (``seed + 1``) and the training
            draws (``seed + 2``).
        snapshots: epochs after which the EMA weights are also kept (an early checkpoint).
        noise_levels: noise levels (the book's sigma, > 0) of a DAE, or ``None``.
        epoch_images: images per epoch when the training subset is smaller: the subset is
            repeated ``ceil(epoch_images / train_images)`` times and each epoch passes over
            the repeats in one random order, so a budget of ``epochs * epoch_images`` images
            seen is the same for every subset size (the data-size sweep's fixed budget) and a
            tiny subset does not write a checkpoint after every few steps. ``None``: one pass
            over the subset per epoch.
        parameterization: ``"ddpm"`` (:class:`lowrank.nets.UNetDenoiser`: epsilon prediction,
            timesteps of the linear ``T = 1000`` schedule) or ``"edm"``
            (:class:`lowrank.nets.EDMUNetDenoiser`: EDM's preconditioning and log-normal
            levels).
    """

    dataset: str = "fashion-mnist"
    size: int | None = 16
    train_images: int | None = None
    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    ema_decay: float = 0.999
    seed: int = 0
    snapshots: tuple[int, ...] = ()
    noise_levels: tuple[float, ...] | None = None
    epoch_images: int | None = None
    parameterization: str = "ddpm"

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {list(PARAMETERIZATIONS)}, "
                f"got {self.parameterization!r}"
            )
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "snapshots", tuple(sorted({int(e) for e in self.snapshots})))
        if self.noise_levels is not None:
            levels = tuple(sorted({float(s) for s in self.noise_levels}))
            if not levels or not all(math.isfinite(s) and s > 0 for s in levels):
                raise ValueError(
                    f"noise_levels must be finite levels > 0 (or None), got {self.noise_levels}"
                )
            object.__setattr__(self, "noise_levels", levels)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive widths, got {self.channels}")
        check_count(self.epochs, "epochs")
        if self.epoch_images is not None:
            check_count(self.epoch_images, "epoch_images")
        bad = [e for e in self.snapshots if not 1 <= e < self.epochs]
        if bad:
            raise ValueError(
                f"snapshots must lie in [1, epochs - 1 = {self.epochs - 1}], got {bad}"
            )

    def config(self) -> dict:
        """The configuration as JSON-ready values (with the cache format). ``noise_levels``,
        ``epoch_images`` and ``parameterization`` enter only when given (not ``"ddpm"``), so a
        diffusion model's key (and cache folder) is the one it had before those fields
        existed."""
        config = {**dataclasses.asdict(self), "channels": list(self.channels),
                  "snapshots": list(self.snapshots), "format": _FORMAT}  # fmt: skip
        if self.noise_levels is None:
            del config["noise_levels"]
        else:
            config["noise_levels"] = list(self.noise_levels)
        if self.epoch_images is None:
            del config["epoch_images"]
        if self.parameterization == "ddpm":
            del config["parameterization"]
        return config

    def key(self) -> str:
        """First 12 hex digits of the SHA-256 of :meth:`config` as sorted JSON."""
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder(self, cache: str | Path | None = None) -> Path:
        kind = self.kind().lower()
        return cache_root(cache) / f"{kind}-{self.dataset}-{self.size or 'native'}px-{self.key()}"

    def denoiser_class(self) -> type[UNetDenoiser]:
        """The class of the network: :class:`lowrank.nets.UNetDenoiser` or its EDM form."""
        return PARAMETERIZATIONS[self.parameterization]

    def kind(self) -> str:
        """``"UNet"`` (a diffusion model) or ``"DAE"`` (trained at ``noise_levels`` only)."""
        return "UNet" if self.noise_levels is None else "DAE"

    def loss(self, model: UNetDenoiser, x0: torch.Tensor, generator: torch.Generator):
        """The training loss of a batch: DDPM's epsilon loss at uniform timesteps, or at
        ``noise_levels`` drawn uniformly per image (a DAE)."""
        if self.noise_levels is None:
            return model.loss(x0, generator)
        levels = torch.tensor(self.noise_levels)
        pick = torch.randint(0, len(levels), (x0.shape[0],), generator=generator)
        return model.loss(x0, generator, sigma=levels[pick])


def cache_root(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$LOWRANK_CACHE``, else ``~/.cache/lowrank/models``."""
    if cache is not None:
        return Path(cache)
    if os.environ.get("LOWRANK_CACHE"):
        return Path(os.environ["LOWRANK_CACHE"])
    return Path.home() / ".cache" / "lowrank" / "models"


def training_images(
    run: UNetRun, split: str = "train", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``run`` in the model's range, and their labels: ``(N, C, H, W)`` float32
    in [-1, 1] and ``(N,)``. ``split="train"`` gives the training subset the run trains on;
    ``"test"`` the whole test split. ``root`` as in :mod:`lowrank.data`."""
    load = datasets.load_fashion_mnist if run.dataset == "fashion-mnist" else datasets.load_cifar10
    images, labels = load(split, root=root)
    if split == "train" and run.train_images is not None:
        gen = torch.Generator().manual_seed(run.seed + 1)
        keep = datasets.balanced_subset(labels, run.train_images, gen)
        images, labels = images[keep], labels[keep]
    return datasets.to_model_range(images, run.size), labels


def initial_network(run: UNetRun, sample_size: int, in_channels: int) -> UNetDenoiser:
    """The network ``run`` starts its training from (seeded with ``run.seed``), for images of
    side ``sample_size`` with ``in_channels`` channels; the global random state is left as it
    was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        return run.denoiser_class().small(
            sample_size, in_channels, run.channels, run.layers_per_block
        )


def _write_json(record: dict, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def _read_record(folder: Path) -> dict | None:
    path = folder / "run.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete {folder} to retrain") from e


def train_unet(
    run: UNetRun,
    cache: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Path:
    """Train ``run`` into its cache folder unless it is there already; return the folder.

    The training stops at every snapshot epoch to store the EMA weights, then resumes
    (bitwise: :func:`lowrank.train.fit` resumes exactly), so the final weights do not depend on
    the snapshots. An interrupted run resumes from ``train.pt``. The record gets the wall time
    and images/s of the epochs this call trained, the device and the number of processes.

    Trains on ``device`` (default: CUDA when available). Under ``torchrun`` every rank trains
    (see :func:`lowrank.train.fit`) and rank 0 writes the folder.
    """
    folder = run.folder(cache)
    record = _read_record(folder)
    if record is not None and record.get("complete"):
        return folder
    rank, world = _distributed()  # the same test fit uses
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x0, _ = training_images(run, "train", data_root)
    subset = len(x0)
    if run.epoch_images is not None:
        x0 = x0.repeat(math.ceil(run.epoch_images / subset), *[1] * (x0.ndim - 1))
    x0 = x0.to(device)
    model = initial_network(run, x0.shape[-1], x0.shape[1])
    init_fingerprint = _weights_fingerprint(model)
    ema = initial_network(run, x0.shape[-1], x0.shape[1])
    ema.requires_grad_(False)
    model, ema = model.to(device), ema.to(device)
    config = {"model": f"UNetDenoiser.small {run.config()}", "x0": fingerprint(x0)}
    generator = torch.Generator().manual_seed(run.seed + 2)
    losses: list[float] = []
    trained, seconds = 0, 0.0
    for stop in (*run.snapshots, run.epochs):
        done = _epochs_in(folder / "train.pt")
        name = "ema" if stop == run.epochs else f"ema-epoch{stop}"
        if stop < done:  # interrupted after this snapshot: it must have been saved then
            if not (folder / name / "config.json").exists():
                raise ValueError(
                    f"{folder / 'train.pt'} holds {done} epochs but the snapshot {name} was "
                    f"never saved; delete {folder} to retrain"
                )
            continue
        start = time.perf_counter()
        losses = fit(model, run.loss, x0, stop, config, lr=run.lr,
                     batch_size=run.batch_size, generator=generator,
                     checkpoint=folder / "train.pt", ema=ema, ema_decay=run.ema_decay,
                     progress=progress, desc=f"{run.kind()} epochs (to {stop})")  # fmt: skip
        if stop > done:
            seconds += time.perf_counter() - start
            trained += (stop - done) * len(x0)
        if rank == 0:
            ema.save_pretrained(folder / name)
    from .profiles import environment

    record = {
        "config": run.config(),
        "complete": True,
        "losses": losses,
        "train_images": subset,
        "images_per_epoch": len(x0),
        "parameters": sum(p.numel() for p in model.parameters()),
        "init_fingerprint": init_fingerprint,
        "seconds_this_call": seconds,
        "images_per_second": trained / seconds if seconds > 0 else None,
        "device": str(device),
        "world_size": world,
        "environment": environment(),
    }
    if rank == 0:
        _write_json(record, folder / "run.json")
    if world > 1:
        torch.distributed.barrier()  # every rank returns a finished folder
    return folder


def is_cached(run: UNetRun, cache: str | Path | None = None) -> bool:
    """Whether the cache holds the finished run ``run``."""
    record = _read_record(run.folder(cache))
    return bool(record and record.get("complete"))


def _epochs_in(checkpoint: Path) -> int:
    """Epochs a fit checkpoint holds (0 when there is none), read without the weights' check."""
    if not checkpoint.exists():
        return 0
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state["epoch"])


def load_unet(
    run: UNetRun,
    epoch: int | None = None,
    cache: str | Path | None = None,
    train: bool = True,
    data_root: str | Path | None = None,
    progress: bool = True,
    debias: bool = False,
) -> tuple[UNetDenoiser, dict]:
    r"""The EMA network of ``run`` (after ``epoch``, a snapshot epoch, or the last) in eval mode,
    and its record (``run.json``); trained first when missing and ``train`` is true.

    The EMA starts at the initial weights :math:`\theta_0`, which keep the weight
    :math:`d^n` after :math:`n` steps of decay :math:`d` (0.63 after one epoch of 469 steps at
    0.999). With ``debias`` that share is taken out, as Adam corrects its moments:
    :math:`(\bar\theta_n - d^n\theta_0)/(1 - d^n)`, the average of the trained weights alone
    with the same relative weights (:func:`ema_init_weight` gives :math:`d^n`)."""
    if epoch is not None and epoch != run.epochs and epoch not in run.snapshots:
        raise ValueError(f"epoch must be {run.epochs} or a snapshot {list(run.snapshots)}")
    folder = run.folder(cache)
    record = _read_record(folder)
    if record is None or not record.get("complete"):
        if not train:
            raise FileNotFoundError(
                f"{folder} holds no finished run: train it with train_unet(run) or "
                f"`python -m lowrank train {_cli_args(run)}`"
            )
        folder = train_unet(run, cache, data_root, progress)
        record = _read_record(folder)
    name = "ema" if epoch is None or epoch == run.epochs else f"ema-epoch{epoch}"
    network = run.denoiser_class().from_pretrained(folder / name).eval()
    if debias:
        config = network.unet.config
        start = initial_network(run, config.sample_size, config.in_channels)
        recorded = record.get("init_fingerprint")  # absent in records written before it existed
        if recorded is not None and recorded != _weights_fingerprint(start):
            raise ValueError(
                f"{folder}: the initial weights rebuilt from seed {run.seed} differ from those "
                "the run started from (another torch or diffusers?), so the EMA cannot be "
                "debiased; load it with debias=False or retrain the run"
            )
        init = ema_init_weight(run, record, epoch or run.epochs)
        with torch.no_grad():
            for average, first in zip(network.parameters(), start.parameters(), strict=True):
                average.sub_(init * first).div_(1 - init)
    return network, record


def _weights_fingerprint(network: torch.nn.Module) -> str:
    """SHA-256 of a network's parameters. The record keeps that of the initial weights, which
    :func:`load_unet` rebuilds from the seed to debias the EMA: a torch or diffusers that draws
    them differently is then an error, not silently wrong weights."""
    return fingerprint(torch.cat([p.detach().flatten() for p in network.parameters()]))


def ema_init_weight(run: UNetRun, record: dict, epoch: int) -> float:
    """The weight :math:`d^n` the initial weights keep in ``run``'s EMA after ``epoch`` epochs
    (``record``: its ``run.json``, which holds the training subset's size)."""
    images = record["train_images"]
    if run.epoch_images is not None:
        images *= math.ceil(run.epoch_images / images)
    steps = epoch * math.ceil(images / run.batch_size)
    return run.ema_decay**steps


def _cli_args(run: UNetRun) -> str:
    """The command-line arguments of ``python -m lowrank train`` that give ``run``."""
    parts = []
    for field in dataclasses.fields(run):
        value = getattr(run, field.name)
        if value == field.default:
            continue
        flag = "--" + field.name.replace("_", "-")
        shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
        shown = "native" if value is None else shown
        parts.append(f"{flag} {shown}")
    return " ".join(parts)
