"""Training loop for the learnable low-rank DAE (eq. 4), resumable.

The paper trains the DAE as a diffusion model: DDPM with ``T = 500`` linear betas, a timestep
drawn uniformly for every sample, Adam with learning rate 5e-4, 200 epochs. In the VE form used
by the theory the noisy input is ``x_t = x_0 + sigma_t * eps`` with
``sigma_t = sqrt((1 - abar_t) / abar_t)`` (the VP input divided by ``sqrt(abar_t)``), and the
loss is the denoising error ``||x_theta(x_t) - x_0||^2``.

With a ``checkpoint`` path, the model, optimizer, generator and loss history are written
atomically after every epoch and a rerun resumes from the last completed epoch, so an
interrupted run loses at most one epoch and a finished one is not redone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from tqdm.std import tqdm  # tqdm.auto warns in Jupyter kernels without ipywidgets

from .denoisers import LowRankDAE
from .schedules import linear_alpha_bar, sigma_from_alpha_bar

__all__ = ["ddpm_training_sigmas", "denoising_loss", "train_dae"]


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


def _save_atomic(state: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a reader never sees a half-written checkpoint


def train_dae(
    dae: LowRankDAE,
    x0: torch.Tensor,
    epochs: int,
    lr: float = 5e-4,
    batch_size: int = 128,
    T: int = 500,
    generator: torch.Generator | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> list[float]:
    """Train ``dae`` on clean samples ``x0`` ``(N, n)``; return the mean loss of every epoch.

    Arguments:
        dae: the model (trained in place).
        x0: training samples, in the model's dtype.
        epochs: passes over ``x0``.
        lr, batch_size: Adam learning rate and minibatch size.
        T: DDPM steps; each sample gets a uniform timestep in ``1 .. T``.
        generator: seeds shuffling, timesteps and noise (CPU).
        checkpoint: file to save to after every epoch and to resume from.
        progress: show a progress bar over epochs.
    """
    if x0.ndim != 2 or x0.shape[1] != dae.n:
        raise ValueError(f"x0 must have shape (N, {dae.n}), got {tuple(x0.shape)}")
    if epochs < 0 or batch_size < 1:
        raise ValueError("epochs must be >= 0 and batch_size >= 1")
    generator = generator or torch.Generator().manual_seed(0)
    sigmas = ddpm_training_sigmas(T, dae.dtype)
    optimizer = torch.optim.Adam(dae.parameters(), lr=lr)
    losses: list[float] = []
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        dae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        losses, start = state["losses"], state["epoch"]
    x0 = x0.to(dae.dtype)
    bar = tqdm(range(start, epochs), desc="DAE epochs", disable=not progress, initial=start,
               total=epochs)  # fmt: skip
    small = batch_size * dae.n * dae.K * dae.d < _SMALL_STEP
    with _threads(1 if small else None):
        _run_epochs(dae, x0, bar, optimizer, sigmas, batch_size, T, generator, losses, path)
    return losses


def _run_epochs(dae, x0, bar, optimizer, sigmas, batch_size, T, generator, losses, path):
    N = x0.shape[0]
    for epoch in bar:
        order = torch.randperm(N, generator=generator)
        total = 0.0
        for i in range(0, N, batch_size):
            batch = x0[order[i : i + batch_size]]
            t = torch.randint(0, T, (batch.shape[0],), generator=generator)
            noise = torch.randn(batch.shape, generator=generator, dtype=dae.dtype)
            loss = denoising_loss(dae, batch, sigmas[t], noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.shape[0]
        losses.append(total / N)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if path is not None:
            _save_atomic(
                {
                    "model": dae.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "losses": losses,
                    "epoch": epoch + 1,
                },
                path,
            )
