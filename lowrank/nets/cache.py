"""Trained diffusion models, cached by configuration: a model is trained once and every chapter
(and every re-rendering) loads it.

A :class:`~lowrank.nets.runs.UNetRun` names a network; its
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

A cached folder is checked before its weights are used: ``run.json`` must be an object whose
``complete`` is ``True`` and whose ``config`` is the run's own (:meth:`UNetRun.config`); the
weights folder must exist (a cached run never falls through to the hub), its ``config.json``
must describe the network the run builds, every file in it must have the SHA-256 the record
took when the training ended, and the network must have the recorded number of parameters.
Each failure names the file and the fix (delete the folder to retrain). Records written before
the hashes existed load with an :class:`UnverifiedWeightsWarning` (every other check still
applies): retrain them to record the hashes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lowrank import data as datasets
from lowrank.nets.runs import UNetRun, cli_args
from lowrank.nets.train import (
    Optimization,
    _distributed,
    _read_checkpoint,
    fingerprint,
    fit,
    write_error,
)
from lowrank.nets.unet import UNetDenoiser
from lowrank.nets.verify import (
    check_schedule,
    check_weights,
    expected_architecture,
    finished_record,
    hash_weights,
    loading_hash,
    schedule_hash,
)
from lowrank.provenance import environment

__all__ = [
    "RunRecord",
    "TrainedNetwork",
    "training_images",
    "initial_network",
    "train_unet",
    "is_cached",
    "load_unet",
    "ema_init_weight",
]


@dataclass(frozen=True)
class RunRecord:
    """A finished run's ``run.json``, typed: what training measured and where it ran. Fields
    that records written before them lack are ``None``.

    Attributes:
        config: the run's configuration (:meth:`UNetRun.config`).
        losses: the mean training loss of each epoch of the last training call.
        train_images: the training subset's size; ``images_per_epoch`` the images one epoch
            saw (the subset repeated to ``epoch_images``).
        parameters: the network's parameter count.
        seconds_this_call, images_per_second: the last training call's time and speed
            (``images_per_second`` ``None`` when that call trained nothing).
        device, world_size: where it trained; ``environment`` the software and machine.

    The integrity fields (``complete``, the hashes, ``init_fingerprint``) are checked when the
    run loads and not carried here; ``run.json`` itself holds them.
    """

    config: dict
    losses: tuple[float, ...]
    train_images: int | None
    images_per_epoch: int | None
    parameters: int | None
    seconds_this_call: float | None
    images_per_second: float | None
    device: str | None
    world_size: int | None
    environment: dict | None

    @classmethod
    def from_json(cls, record: dict) -> RunRecord:
        """The typed form of a ``run.json`` that :func:`finished_record` accepted."""
        fields = (
            "train_images", "images_per_epoch", "parameters", "seconds_this_call",
            "images_per_second", "device", "world_size", "environment",
        )  # fmt: skip
        return cls(
            config=record["config"],
            losses=tuple(record.get("losses") or ()),
            **{name: record.get(name) for name in fields},
        )

    @property
    def final_loss(self) -> float:
        """The last epoch's mean training loss."""
        return self.losses[-1]


@dataclass(frozen=True)
class TrainedNetwork:
    """A network from the cache, in eval mode, and its run's record."""

    denoiser: UNetDenoiser
    record: RunRecord


def training_images(
    run: UNetRun, split: str = "train", root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``run`` in the model's range, and their labels: ``(N, C, H, W)`` float32
    in [-1, 1] and ``(N,)``. ``split="train"`` gives the training subset the run trains on;
    ``"test"`` the whole test split. ``root`` as in :mod:`lowrank.data`.

    With ``run.delta`` the whole split is overlaid first (:func:`lowrank.data.overlay`, seeded
    with ``run.delta_seed``; partners from the same split), then subset: an image's overlay
    does not depend on the subset size or on the network's seed."""
    load = datasets.load_fashion_mnist if run.dataset == "fashion-mnist" else datasets.load_cifar10
    images, labels = load(split, root=root)
    keep = slice(None)
    if split == "train" and run.train_images is not None:
        gen = torch.Generator().manual_seed(run.seed + 1)
        keep = datasets.balanced_subset(labels, run.train_images, gen)
    if not run.delta:  # only the kept images are converted
        return datasets.to_model_range(images[keep], run.size), labels[keep]
    x, _ = datasets.overlay(datasets.to_model_range(images, run.size), labels, run.delta,
                            run.delta_seed)  # fmt: skip
    return x[keep].contiguous(), labels[keep]


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
    """``record`` to ``path`` atomically, through a uniquely named temporary file (created
    anew, never a file or a link already there); a full disk or a read-only folder is an
    ``OSError`` naming the file and the fix."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(path, e) from e
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, e) from e


def train_unet(
    run: UNetRun,
    cache: str | Path | None = None,
    data_root: str | Path | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> Path:
    """Train ``run`` into its cache folder unless it is there already; return the folder.

    The training stops at every snapshot epoch to store the EMA weights, then resumes
    (bitwise: :func:`lowrank.nets.train.fit` resumes exactly), so the final weights do not
    depend on the snapshots. An interrupted run resumes from ``train.pt``. The record gets the
    wall time and images/s of the epochs this call trained, the device and the number of processes.

    Trains on ``device`` (default: CUDA when available). Under ``torchrun`` every rank trains
    (see :func:`lowrank.nets.train.fit`) and rank 0 writes the folder.
    """
    folder = run.folder(cache)
    if finished_record(run, folder) is not None:
        return folder
    rank, world = _distributed()  # the same test fit uses
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x0, _ = training_images(run, "train", data_root)  # before the folder: no empty one is left
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e) from e
    try:
        return _train_into(run, folder, x0, device, progress, rank, world)
    except BaseException:
        if made and rank == 0 and not any(folder.iterdir()):
            folder.rmdir()  # nothing was written: leave no empty folder behind
        raise


def _train_into(run, folder, x0, device, progress, rank, world) -> Path:
    """The body of :func:`train_unet`, once the data are loaded and the folder exists."""
    if rank == 0:  # checkpoint temp files left by a kill during a write (see save_checkpoint)
        for stale in folder.glob(".train.pt.*.tmp"):
            stale.unlink(missing_ok=True)
    expected = expected_architecture(run)
    shape = (expected["in_channels"], expected["sample_size"], expected["sample_size"])
    if tuple(x0.shape[1:]) != shape:  # the record and the load check assume this shape
        raise ValueError(
            f"the training images of {run.dataset} are {tuple(x0.shape[1:])}, not the {shape} "
            f"this run expects (size {run.size}): pass data_root to the data set's own files"
        )
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
    names = []
    for stop in (*run.snapshots, run.epochs):
        done = _epochs_in(folder / "train.pt")
        name = "ema" if stop == run.epochs else f"ema-epoch{stop}"
        names.append(name)
        if stop < done:  # interrupted after this snapshot: it must have been saved then
            if not (folder / name / "config.json").exists():
                raise ValueError(
                    f"{folder / 'train.pt'} holds {done} epochs but the snapshot {name} was "
                    f"never saved; delete {folder} to retrain"
                )
            continue
        start = time.perf_counter()
        optimization = Optimization(stop, lr=run.lr, batch_size=run.batch_size,
                                    ema_decay=run.ema_decay)  # fmt: skip
        label = f"{run.kind()} epochs (to {stop})" if progress else None
        losses = fit(model, run.loss, x0, config, optimization, generator=generator,
                     checkpoint=folder / "train.pt", ema=ema, progress=label)  # fmt: skip
        if stop > done:
            seconds += time.perf_counter() - start
            trained += (stop - done) * len(x0)
        if rank == 0:
            try:
                ema.save_pretrained(folder / name)
            except (OSError, RuntimeError) as e:
                raise write_error(folder / name, e) from e
    record = {
        "config": run.config(),
        "complete": True,
        "losses": losses,
        "train_images": subset,
        "images_per_epoch": len(x0),
        "parameters": sum(p.numel() for p in model.parameters()),
        "init_fingerprint": init_fingerprint,
        "schedule_sha256": schedule_hash(model),
        "weights_sha256": hash_weights(folder, names) if rank == 0 else None,
        "seconds_this_call": seconds,
        "images_per_second": trained / seconds if seconds > 0 else None,
        "device": str(device),
        "world_size": world,
        "environment": environment(),
    }
    record["loading_sha256"] = loading_hash(record)
    if rank == 0:
        _write_json(record, folder / "run.json")
    if world > 1:
        torch.distributed.barrier()  # every rank returns a finished folder
    return folder


def is_cached(run: UNetRun, cache: str | Path | None = None) -> bool:
    """Whether the cache holds the finished run ``run`` (its record checked as
    :func:`load_unet` checks it: a record of another run is an error, not ``False``; the
    weights and the schedule are checked when it loads)."""
    return finished_record(run, run.folder(cache)) is not None


def _epochs_in(checkpoint: Path) -> int:
    """Epochs a fit checkpoint holds (0 when there is none), read as
    :func:`lowrank.nets.train.load_checkpoint` reads it (tensors and plain containers only; a
    truncated or foreign file is an error that names it) without comparing configurations."""
    if not checkpoint.exists():
        return 0
    epoch = _read_checkpoint(checkpoint).get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(
            f"{checkpoint}: no epoch count (got {epoch!r}): not a checkpoint of this package's "
            "fit. Delete it to start the run afresh."
        )
    return epoch


def load_unet(
    run: UNetRun,
    epoch: int | None = None,
    cache: str | Path | None = None,
    train: bool = True,
    data_root: str | Path | None = None,
    progress: bool = True,
    debias: bool = False,
) -> TrainedNetwork:
    r"""The EMA network of ``run`` (after ``epoch``, a snapshot epoch, or the last) in eval mode,
    and its record (``run.json``, typed); trained first when missing and ``train`` is true.

    The EMA starts at the initial weights :math:`\theta_0`, which keep the weight
    :math:`d^n` after :math:`n` steps of decay :math:`d` (0.63 after one epoch of 469 steps at
    0.999). With ``debias`` that share is taken out, as Adam corrects its moments:
    :math:`(\bar\theta_n - d^n\theta_0)/(1 - d^n)`, the average of the trained weights alone
    with the same relative weights (:func:`ema_init_weight` gives :math:`d^n`)."""
    bad_type = isinstance(epoch, bool) or not isinstance(epoch, (int, type(None)))
    if bad_type or (epoch is not None and epoch != run.epochs and epoch not in run.snapshots):
        raise ValueError(
            f"epoch must be {run.epochs} or a snapshot {list(run.snapshots)}, got {epoch!r}"
        )
    folder = run.folder(cache)
    record = finished_record(run, folder)
    if record is None:
        if not train:
            raise FileNotFoundError(
                f"{folder} holds no finished run: train it with train_unet(run) or "
                f"`python -m lowrank train {cli_args(run)}`"
            )
        folder = train_unet(run, cache, data_root, progress)
        record = finished_record(run, folder)
    name = "ema" if epoch is None or epoch == run.epochs else f"ema-epoch{epoch}"
    weights = check_weights(run, folder, name, record)
    # local_files_only: a cached run never reaches the hub, whatever the path holds
    network = run.denoiser_class().from_pretrained(weights, local_files_only=True).eval()
    check_schedule(network, folder, record)
    count, recorded = sum(p.numel() for p in network.parameters()), record.get("parameters")
    if count != recorded:
        raise ValueError(
            f"{weights} holds a network of {count:,} parameters, but {folder / 'run.json'} "
            f"records {recorded!r}; delete {folder} to retrain"
        )
    if debias:
        _record_train_images(record, folder / "run.json")
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
    return TrainedNetwork(network, RunRecord.from_json(record))


def _weights_fingerprint(network: torch.nn.Module) -> str:
    """SHA-256 of a network's parameters. The record keeps that of the initial weights, which
    :func:`load_unet` rebuilds from the seed to debias the EMA: a torch or diffusers that draws
    them differently is then an error, not silently wrong weights."""
    return fingerprint(torch.cat([p.detach().flatten() for p in network.parameters()]))


def ema_init_weight(run: UNetRun, record: RunRecord | dict, epoch: int) -> float:
    """The weight :math:`d^n` the initial weights keep in ``run``'s EMA after ``epoch`` epochs
    (``record``: its record, typed or as ``run.json`` holds it, which has the training subset's
    size)."""
    images = _record_train_images(record, "the record")
    if run.epoch_images is not None:
        images *= math.ceil(run.epoch_images / images)
    steps = epoch * math.ceil(images / run.batch_size)
    return run.ema_decay**steps


def _record_train_images(record, where) -> int:
    """The training subset's size a run's record holds (``where``: the record's file)."""
    if isinstance(record, RunRecord):
        images = record.train_images
    else:
        images = record.get("train_images") if isinstance(record, dict) else None
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(
            f"{where} holds no train_images (the training subset's size, a count >= 1; got "
            f"{images!r}), which debiasing the EMA needs: load with debias=False, or delete "
            "the run's folder to retrain it"
        )
    return images
