"""What names a trained network: :class:`UNetRun`, everything that defines it (data set,
resolution, widths, epochs, optimizer settings, seed, and the epochs at which an EMA snapshot
is kept). Its :meth:`UNetRun.key` (a SHA-256 of that configuration) names its folder in the
model cache (:func:`cache_root`); :mod:`lowrank.nets.cache` trains and loads it. Adding a field
must leave existing keys unchanged (a field at its default is left out of the hash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
from pathlib import Path

import torch

from lowrank._checks import check_count
from lowrank.nets.unet import EDMUNetDenoiser, UNetDenoiser
from lowrank.theory.schedules import linear_alpha_bar, sigma_from_alpha_bar

__all__ = [
    "DATASETS",
    "PARAMETERIZATIONS",
    "UnverifiedWeightsWarning",
    "UNetRun",
    "cache_root",
    "SIGMA_MAX",
    "NATIVE",
    "WEIGHTS_FILE",
    "cli_args",
]


DATASETS = ("fashion-mnist", "cifar10")


PARAMETERIZATIONS = {"ddpm": UNetDenoiser, "edm": EDMUNetDenoiser}


_FORMAT = 1  # bump when the folder layout or the training recipe changes meaning


# (image channels, native side, training-split size) of each data set
NATIVE = {"fashion-mnist": (1, 28, 60000), "cifar10": (3, 32, 50000)}


# The noise levels a DAE may be trained at. Above: the largest sigma of the linear T = 1000 DDPM
# schedule the networks are conditioned on (157.4; EDM's sampler stops at 80). Past it a DDPM
# network's timestep is clamped to T - 1, so it could not tell the level from 157, the image is
# below 1/157 of its input, and at 1e30 sigma^2 overflows float32: the input is all zeros.
# Below: at 1e-6 the noise sigma * eps is a few float32 steps (2^-23 = 1.2e-7) of a pixel in
# [-1, 1]; smaller, it is rounded away and the epsilon target cannot be predicted from the input.
SIGMA_MAX = float(sigma_from_alpha_bar(linear_alpha_bar(1000)).max())


_SIGMA_MIN = 1e-6


_MAX_SEED = 2**63 - 3  # the subset and the training draws are seeded with seed + 1, seed + 2


WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


class UnverifiedWeightsWarning(UserWarning):
    """A cached run's record holds no SHA-256 of its weights (written before they were
    recorded): the weights are loaded without that check."""


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
        parameterization: ``"ddpm"`` (:class:`lowrank.nets.unet.UNetDenoiser`: epsilon prediction,
            timesteps of the linear ``T = 1000`` schedule) or ``"edm"``
            (:class:`lowrank.nets.unet.EDMUNetDenoiser`: EDM's preconditioning and log-normal
            levels).
        delta, delta_seed: the data's class-agnostic overlay (:func:`lowrank.data.overlay`):
            every image of both splits becomes ``(I_a + delta I_b) / (1 + delta)`` with ``b``
            an image of another class of the same split, the partners drawn with
            ``delta_seed`` (the data set's seed, the same for every network trained on it).
            ``0``: the plain data.
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
    delta: float = 0.0
    delta_seed: int = 0

    def __post_init__(self):
        """Check every field (type, range, finite), so that a bad run fails here, before any
        data are loaded or any cache folder is made. Every message starts with the field's
        name (the command line maps it to its flag)."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {list(PARAMETERIZATIONS)}, "
                f"got {self.parameterization!r}"
            )
        image_channels, native, available = NATIVE[self.dataset]
        channels = _integers(self.channels, "channels", "(32, 64)")
        if not channels:
            raise ValueError("channels must hold one width or more, e.g. (32, 64), got ()")
        small = [c for c in channels if c < 1]
        if small:
            raise ValueError(f"channels must be positive widths, got {channels}")
        object.__setattr__(self, "channels", channels)
        # UNetDenoiser.small's GroupNorm: norm_num_groups = min(8, channels[0]) for every width
        groups = min(8, channels[0])
        odd = [c for c in channels if c % groups]
        if odd:
            raise ValueError(
                f"channels {channels}: every width must be a multiple of the GroupNorm group "
                f"count min(8, channels[0]) = {groups} that UNetDenoiser.small uses; the widths "
                f"{odd} are not (e.g. (8, 16) or (32, 64))"
            )
        if channels[-1] < 8:  # the mid block's attention has heads of 8 channels
            raise ValueError(
                f"channels {channels}: the last width must be >= 8 (the mid block's attention "
                "uses heads of 8 channels), e.g. (8, 16)"
            )
        object.__setattr__(self, "layers_per_block", check_count(self.layers_per_block,
                                                            "layers_per_block"))  # fmt: skip
        if self.size is not None:
            size = check_count(self.size, "size")
            if size > native:
                raise ValueError(
                    f"size must be at most {self.dataset}'s native side {native} (or None for "
                    f"native), got {size}"
                )
            object.__setattr__(self, "size", size)
        side, step = self.size or native, 2 ** (len(channels) - 1)
        if side % step or side // step < 2:
            name = "size" if self.size is not None else "channels"
            raise ValueError(
                f"{name}: {len(channels)} widths halve the image side {len(channels) - 1} "
                f"times, so the side must be a multiple of {step} and at least {2 * step} "
                f"(the deepest level 2x2 or more), got {side}: pick another size or fewer widths"
            )
        if self.train_images is not None:
            images = check_count(self.train_images, "train_images")
            if images > available:
                raise ValueError(
                    f"train_images must be at most the {available} images of {self.dataset}'s "
                    f"training split (or None for all), got {images}"
                )
            object.__setattr__(self, "train_images", images)
        object.__setattr__(self, "epochs", check_count(self.epochs, "epochs"))
        object.__setattr__(self, "batch_size", check_count(self.batch_size, "batch_size"))
        if self.epoch_images is not None:
            object.__setattr__(
                self, "epoch_images", check_count(self.epoch_images, "epoch_images")
            )
        object.__setattr__(self, "seed", check_count(self.seed, "seed", minimum=0))
        if self.seed > _MAX_SEED:
            raise ValueError(f"seed must be at most 2**63 - 3 = {_MAX_SEED}, got {self.seed}")
        lr = _real(self.lr, "lr")
        if not lr > 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        object.__setattr__(self, "lr", lr)
        decay = _real(self.ema_decay, "ema_decay")
        if not 0 <= decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        object.__setattr__(self, "ema_decay", decay)
        snapshots = _integers(self.snapshots, "snapshots", "(1, 2)")
        object.__setattr__(self, "snapshots", tuple(sorted(set(snapshots))))
        bad = [e for e in self.snapshots if not 1 <= e < self.epochs]
        if bad:
            raise ValueError(
                f"snapshots must lie in [1, epochs - 1 = {self.epochs - 1}], got {bad}"
            )
        if self.noise_levels is not None:
            if isinstance(self.noise_levels, (str, bytes)) or not hasattr(
                self.noise_levels, "__iter__"
            ):
                raise TypeError(
                    "noise_levels must be a sequence of levels, e.g. (0.1,), or None, got "
                    f"{self.noise_levels!r}"
                )
            levels = tuple(sorted({_real(s, "noise_levels") for s in self.noise_levels}))
            if not levels:
                raise ValueError("noise_levels must be one level or more (or None), got ()")
            out = [s for s in levels if not _SIGMA_MIN <= s <= SIGMA_MAX]
            if out:
                raise ValueError(
                    f"noise_levels must be levels in [{_SIGMA_MIN:g}, {SIGMA_MAX:.1f}], got "
                    f"{out} (> 0; below, float32 rounds the noise away; above the largest sigma "
                    "of the T = 1000 DDPM schedule, training degenerates in float32)"
                )
            object.__setattr__(self, "noise_levels", levels)
        delta = _real(self.delta, "delta")
        if not 0 <= delta < 1:
            raise ValueError(
                f"delta must lie in [0, 1) (the overlay's amplitude relative to the image's; "
                f"at 1 the label is ambiguous), got {self.delta}"
            )
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "delta_seed", check_count(self.delta_seed, "delta_seed",
                                                           minimum=0))  # fmt: skip

    def config(self) -> dict:
        """The configuration as JSON-ready values (with the cache format). ``noise_levels``,
        ``epoch_images``, ``parameterization`` and the overlay (``delta``, ``delta_seed``)
        enter only when given (not ``"ddpm"``, ``delta`` not 0), so a diffusion model's key
        (and cache folder) is the one it had before those fields existed."""
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
        if self.delta == 0:
            del config["delta"], config["delta_seed"]
        return config

    def key(self) -> str:
        """First 12 hex digits of the SHA-256 of :meth:`config` as sorted JSON."""
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder(self, cache: str | Path | None = None) -> Path:
        kind = self.kind().lower()
        return cache_root(cache) / f"{kind}-{self.dataset}-{self.size or 'native'}px-{self.key()}"

    def denoiser_class(self) -> type[UNetDenoiser]:
        """The class of the network: :class:`lowrank.nets.unet.UNetDenoiser` or its EDM form."""
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


def _integers(values, name: str, example: str) -> tuple[int, ...]:
    """``values`` as a tuple of ints, refusing floats (``8.7`` is not silently 8) and bools."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, e.g. {example}, got {values!r}")
    values = tuple(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
    if bad:
        raise TypeError(f"{name} must be integers, got {bad[0]!r} in {values}")
    return tuple(int(v) for v in values)


def _real(value, name: str) -> float:
    """A finite real number (not a bool or a string); builtin floats and ints are kept as they
    are, so the key of an existing run does not change."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value if isinstance(value, (int, float)) else float(value)


def cache_root(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$LOWRANK_CACHE``, else ``~/.cache/lowrank/models``."""
    if cache is not None:
        return Path(cache)
    if os.environ.get("LOWRANK_CACHE"):
        return Path(os.environ["LOWRANK_CACHE"])
    return Path.home() / ".cache" / "lowrank" / "models"


def cli_args(run: UNetRun) -> str:
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
