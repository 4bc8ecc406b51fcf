"""One resumable training loop, :func:`fit`, and the low-rank DAE's use of it (eq. 4).

The paper trains the DAE as a diffusion model: DDPM with ``T = 500`` linear betas, a timestep
drawn uniformly for every sample, Adam with learning rate 5e-4, 200 epochs. In the VE form used
by the theory the noisy input is ``x_t = x_0 + sigma_t * eps`` with
``sigma_t = sqrt((1 - abar_t) / abar_t)`` (the VP input divided by ``sqrt(abar_t)``), and the
loss is the denoising error ``||x_theta(x_t) - x_0||^2``.

With a ``checkpoint`` path, the model, optimizer, generator and loss history are written
atomically after every epoch and a rerun resumes from the last completed epoch, so an
interrupted run loses at most one epoch and a finished one is not redone.

Checkpoints are loaded with ``torch.load(..., weights_only=True)``, which unpickles tensors and
plain containers only: a file that would run code on load is refused. Each checkpoint stores the
run's configuration (hyperparameters and a fingerprint of the training data); resuming with a
different one is an error that names what differs, never a silent mix of two runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.std import tqdm  # tqdm.auto warns in Jupyter kernels without ipywidgets

from lowrank._checks import check_count
from lowrank.theory.denoisers import LowRankDAE
from lowrank.theory.schedules import linear_alpha_bar, sigma_from_alpha_bar

__all__ = [
    "ddpm_training_sigmas",
    "denoising_loss",
    "Optimization",
    "fit",
    "DAERecipe",
    "train_dae",
    "fingerprint",
    "save_checkpoint",
    "load_checkpoint",
    "update_ema",
    "write_error",
]


def ddpm_training_sigmas(T: int = 500, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(T,)`` VE sigmas of every timestep ``t = 1 .. T`` of a linear DDPM schedule."""
    return sigma_from_alpha_bar(linear_alpha_bar(T)).to(dtype)


def denoising_loss(
    dae: LowRankDAE, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Mean training loss ``||x_theta(x0 + sigma eps) - x0||^2`` over rows, for given per-row
    noise levels ``sigma`` ``(B,)`` and noise ``eps`` ``(B, n)`` (fix them to compare models on
    common random numbers)."""
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}")
    return (dae(x0 + sigma[:, None] * noise, sigma) - x0).square().sum(1).mean()


# Below this many multiply-adds per step, intra-op threads cost more than they save (measured
# on 2 cores: 1.8 ms per step of the Fig. 3 DAE with 1 thread, several times more with 2).
_SMALL_STEP = 1 << 22


@contextlib.contextmanager
def _threads(count: int | None):
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fingerprint(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and values: identifies a training set in a
    checkpoint's configuration without storing it."""
    digest = hashlib.sha256(f"{x.dtype} {tuple(x.shape)}".encode())
    digest.update(x.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_error(path: Path, error: BaseException) -> OSError:
    """A one-line ``OSError`` for a write that failed (a full disk, a read-only folder): the
    file, the reason and the fix. torch reports a full disk as a ``RuntimeError`` of its zip
    writer (``unexpected pos``), so any error of a write is given this form."""
    reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0]
    failure = OSError(
        f"cannot write {path}: {reason} (is the disk full or the folder read-only?); free "
        "space or make it writable, or set LOWRANK_CACHE (--cache) to another folder; what "
        "was written before is kept"
    )
    failure.errno = getattr(error, "errno", None)
    return failure


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one.

    The data go to a uniquely named temporary file in the same folder (two runs never share
    it), are fsynced, then renamed over ``path``; the folder is fsynced so the rename survives a
    crash.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(path, e) from e
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, e) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_checkpoint(path: str | Path, config: dict) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` for the run described by ``config``.

    Only tensors and plain containers are unpickled (``weights_only=True``).

    Raises:
        ValueError: the file is truncated or corrupt, holds anything else than tensors and plain
            containers, or was written by a run whose configuration differs from ``config``
            (the message lists the differences).
    """
    path = Path(path)
    state = _read_checkpoint(path)
    saved = state["config"]
    differs = [
        f"{key}: checkpoint {saved.get(key)!r}, this call {config.get(key)!r}"
        for key in sorted(set(saved) | set(config))
        if saved.get(key) != config.get(key)
    ]
    if differs:
        raise ValueError(
            f"{path} was written by a different run; "
            + "; ".join(differs)
            + ". Use another checkpoint path, or call with the stored configuration."
        )
    return state


def _read_checkpoint(path: Path) -> dict:
    """The state in the checkpoint ``path`` (tensors and plain containers only), with the
    messages of :func:`load_checkpoint` for a refused, corrupt or foreign file; configurations
    are not compared."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file can fail anywhere in the unpickler
        found = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line]
        if found:
            raise ValueError(
                f"{path}: refused to load: it holds objects other than tensors and plain "
                "containers, which could run code when unpickled. Delete it (or pass another "
                f"checkpoint path) to start the run afresh. ({found[0][:160]})"
            ) from e
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise ValueError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {type(e).__name__} "
            f"{first}). Delete it to start the run afresh."
        ) from e
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(
            f"{path}: no stored configuration (not a checkpoint of this package, or one written "
            "before configurations were stored). Delete it to start the run afresh."
        )
    return state


@dataclasses.dataclass(frozen=True)
class Optimization:
    """How :func:`fit` trains: Adam for ``epochs`` passes in minibatches.

    Attributes:
        epochs: passes over the data counted from the start of the run: a resumed run trains
            the epochs its checkpoint does not hold yet; fewer than it holds is an error.
        lr, batch_size: Adam's learning rate and the minibatch size.
        ema_decay: the per-step decay of the exponential moving average of the weights kept
            in :func:`fit`'s ``ema`` model; ``None`` when no EMA is kept.
    """

    epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    ema_decay: float | None = None


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    data: torch.Tensor,
    config: dict,
    optimization: Optimization,
    *,
    generator: torch.Generator | None = None,
    checkpoint: str | Path | None = None,
    ema: torch.nn.Module | None = None,
    progress: str | None = "epochs",
) -> list[float]:
    """Train ``model`` with Adam on minibatches of ``data``; return the mean loss of every epoch.

    Each epoch draws a permutation of ``data`` from ``generator``; ``loss_fn(model, batch,
    generator)`` draws whatever else it needs (noise levels, noise) from the same generator, so
    a run is a function of the generator's seed alone and a resumed run is bitwise the run that
    was never interrupted.

    Arguments:
        model: trained in place.
        loss_fn: mean loss of a minibatch ``(B, ...)`` of ``data``.
        data: ``(N, ...)`` training examples, on the model's device.
        config: what defines the run beyond the weights, JSON-like (model, hyperparameters,
            a :func:`fingerprint` of the data); ``lr``, ``batch_size`` and ``ema_decay`` are
            added. Stored in the checkpoint; resuming under another one is an error.
        optimization: epochs, learning rate, batch size and EMA decay.
        generator: CPU generator of the shuffling and of ``loss_fn``'s draws.
        checkpoint: file written atomically after every epoch (model, optimizer, generator,
            EMA, losses) and resumed from when it exists.
        ema: a copy of ``model`` that keeps the exponential moving average of its parameters
            (updated after every step, ``optimization.ema_decay`` per step).
        progress: the label of a progress bar over epochs, or ``None`` for none.

    Under ``torchrun`` (an initialized ``torch.distributed`` process group) ``fit`` runs
    unchanged as data-parallel training: every rank holds the whole model and ``data``, draws
    the same permutation from ``generator``, trains on its share ``rows[rank::world]`` of each
    batch with its own stream of draws (seeded from ``generator``'s state every epoch), and the
    gradients are averaged over ranks, weighted by rows, in one all-reduce before each step, so
    the replicas stay identical; rank 0 writes the checkpoint. With a loss that draws nothing
    the step is that of one process on the whole batch, up to summation order.
    """
    if not isinstance(optimization, Optimization):
        raise TypeError(
            f"optimization must be an Optimization(epochs, lr, batch_size, ema_decay), got "
            f"{type(optimization).__name__}"
        )
    if progress is not None and not isinstance(progress, str):
        raise TypeError(f"progress must be a bar's label (a string) or None, got {progress!r}")
    epochs = check_count(optimization.epochs, "epochs", minimum=0)
    batch_size = check_count(optimization.batch_size, "batch_size")
    lr, ema_decay = optimization.lr, optimization.ema_decay
    if not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if ema is not None and (ema_decay is None or not 0 <= ema_decay < 1):
        raise ValueError(f"ema_decay must lie in [0, 1) with an ema model, got {ema_decay}")
    if len(data) == 0:
        raise ValueError("data is empty (N = 0): nothing to train on")
    generator = generator or torch.Generator().manual_seed(0)
    reserved = {"lr", "batch_size", "ema_decay"} & set(config)
    if reserved:
        raise ValueError(f"config must not hold {sorted(reserved)}: fit records them itself")
    config = {**config, "lr": float(lr), "batch_size": batch_size}
    rank, world = _distributed()
    if world > 1:  # each rank draws its own noise: a run's weights depend on the world size
        config["world_size"] = world
    if ema is not None:
        config["ema_decay"] = float(ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = load_checkpoint(path, config)
        if state["epoch"] > epochs:
            raise ValueError(
                f"{path} holds {state['epoch']} epochs, more than the {epochs} asked for: ask "
                f"for epochs >= {state['epoch']}, or use another checkpoint path"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        losses, start = state["losses"], state["epoch"]
    N = len(data)
    bar = tqdm(range(start, epochs), desc=progress, disable=progress is None or rank > 0,
               initial=start, total=epochs)  # fmt: skip
    for epoch in bar:
        draws = generator
        if world > 1:  # each rank its own stream, seeded by the shared generator's state
            draws = torch.Generator().manual_seed(_rank_seed(generator.get_state(), rank))
        order = torch.randperm(N, generator=generator)
        total = 0.0
        for i in range(0, N, batch_size):
            rows = order[i : i + batch_size]
            mine = rows[rank::world]
            optimizer.zero_grad()
            if len(mine) > 0:
                loss = loss_fn(model, data[mine.to(data.device)], draws)
                loss.backward()
                total += loss.item() * len(mine)
            if world > 1:
                _average_gradients(model, len(mine), len(rows))
            optimizer.step()
            if ema is not None:
                update_ema(ema, model, ema_decay)
        losses.append(_sum_over_ranks(total, world, data.device) / N)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if path is not None and rank == 0:
            state = {
                "config": config,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "losses": losses,
                "epoch": epoch + 1,
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            save_checkpoint(state, path)
        if world > 1:
            torch.distributed.barrier()  # no rank reads a checkpoint before it is written
    return losses


def _distributed() -> tuple[int, int]:
    """``(rank, world size)`` of an initialized ``torch.distributed`` process group, else
    ``(0, 1)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rank_seed(state: torch.Tensor, rank: int) -> int:
    """A seed for one rank's draws in one epoch, hashed from the shared generator's state (which
    it does not advance: the permutations are those of a single process)."""
    digest = hashlib.sha256(state.numpy().tobytes() + rank.to_bytes(4, "little")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@torch.no_grad()
def _average_gradients(model: torch.nn.Module, rows: int, batch: int) -> None:
    """Make every rank's gradient the gradient of the whole batch's mean loss: each rank's
    mean-loss gradient weighted by its share of rows, summed over ranks in one all-reduce."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads]) * (rows / batch)
    torch.distributed.all_reduce(flat)
    for p, piece in zip(params, flat.split([g.numel() for g in grads]), strict=True):
        p.grad = piece.view_as(p).clone()


def _sum_over_ranks(value: float, world: int, device: torch.device) -> float:
    if world == 1:
        return value
    # on the parameters' device: NCCL reduces CUDA tensors only
    total = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return total.item()


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for average, current in zip(ema.parameters(), model.parameters(), strict=True):
        average.lerp_(current, 1 - decay)
    for average, current in zip(ema.buffers(), model.buffers(), strict=True):
        average.copy_(current)


@dataclasses.dataclass(frozen=True)
class DAERecipe:
    """How :func:`train_dae` trains the DAE (defaults: the paper's recipe but its epochs).

    Attributes:
        epochs: passes over the samples, counted from the start of the run (a resumed run
            trains the epochs its checkpoint does not hold yet). The paper: 200.
        lr, batch_size: Adam's learning rate and the minibatch size.
        T: DDPM steps; each sample gets a uniform timestep in ``1 .. T``.
    """

    epochs: int
    lr: float = 5e-4
    batch_size: int = 128
    T: int = 500


def train_dae(
    dae: LowRankDAE,
    x0: torch.Tensor,
    recipe: DAERecipe,
    *,
    generator: torch.Generator | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> list[float]:
    """Train ``dae`` on clean samples ``x0`` ``(N, n)`` with :func:`fit`, as the paper does;
    return the mean loss of every epoch.

    Arguments:
        dae: the model (trained in place).
        x0: training samples, in the model's dtype.
        recipe: epochs, learning rate, batch size and DDPM steps.
        generator: seeds shuffling, timesteps and noise (CPU).
        checkpoint: file to save to after every epoch and to resume from. On resume the
            model's weights, the optimizer and the generator's state come from the file; the
            model's shape, the recipe's ``lr``, ``batch_size`` and ``T`` and the data ``x0``
            must be those of the run that wrote it, and its ``epochs`` at least the epochs it
            holds (else ``ValueError``, naming what differs).
        progress: show a progress bar over epochs.
    """
    if not isinstance(recipe, DAERecipe):
        raise TypeError(
            f"recipe must be a DAERecipe(epochs, lr, batch_size, T), got {type(recipe).__name__}"
        )
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2 or x0.shape[1] != dae.n:
        raise ValueError(f"x0 must be a tensor of shape (N, {dae.n}), got {_shape(x0)}")
    if not torch.is_floating_point(x0):
        raise TypeError(f"x0 must be floating point, got {x0.dtype}")
    if x0.shape[0] == 0:
        raise ValueError("x0 is empty (N = 0): nothing to train on")
    if not bool(torch.all(torch.isfinite(x0))):
        raise ValueError("x0 must be finite (it contains NaN or inf)")
    T = check_count(recipe.T, "T")
    x0 = x0.to(dae.dtype)
    sigmas = ddpm_training_sigmas(T, dae.dtype)

    def loss(model: LowRankDAE, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        t = torch.randint(0, T, (batch.shape[0],), generator=gen)
        noise = torch.randn(batch.shape, generator=gen, dtype=dae.dtype)
        return denoising_loss(model, batch, sigmas[t], noise)

    config = {
        "model": f"LowRankDAE(n={dae.n}, K={dae.K}, d={dae.d}, delta={dae.delta})",
        "dtype": str(dae.dtype),
        "T": T,
        "x0": fingerprint(x0),
    }
    small = recipe.batch_size * dae.n * dae.K * dae.d < _SMALL_STEP
    optimization = Optimization(recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size)
    with _threads(1 if small else None):
        return fit(dae, loss, x0, config, optimization, generator=generator,
                   checkpoint=checkpoint, progress="DAE epochs" if progress else None)  # fmt: skip


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__
