"""Activations of a network at named layers, pooled, across noise levels (the paper's features).

The paper probes a diffusion model by feeding it a noisy image :math:`x_0 + \\sigma n` (or the
clean :math:`x_0` with :math:`\\sigma`'s conditioning, Fig. 11), reading the activation of a
block and averaging it over space. One forward pass gives every layer: forward hooks on the
named submodules record the globally average-pooled output of each as the network runs.

Readouts. A name is a block (``"mid_block"``: the paper's global average, ``(B, C)``) or a
block with a spatial readout, ``"mid_block@2x2"``: the average over each cell of a 2 x 2 grid
(adaptive average pooling: when the map's side is not a multiple of the grid's, neighbouring
cells overlap by a row or a column), ``(B, C * 4)``, which keeps the coarse layout that the
global average throws away. Every readout of a block comes from the same forward pass.

* :class:`HookedDenoiser`: what is probed, one object: a denoiser ``den(x_t, sigma) -> x0_hat``
  (:class:`lowrank.theory.denoisers.Denoiser`) whose ``network`` holds the blocks to hook (a
  :class:`lowrank.nets.unet.UNetDenoiser`; a module called as ``module(x_t, sigma)`` is its own
  network);
* :class:`PooledActivations`: a context manager holding the hooks (removed on exit, also on an
  error);
* :func:`features_across_sigma`: ``(S, N, C)`` features per layer for ``S`` noise levels and
  ``N`` images, batched, seeded, with a progress bar;
* :func:`noisy_pixels`: the noisy inputs themselves with the same noise (the pixel control);
* :func:`split_items`: features of training and test images extracted in one pass, split apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from tqdm.std import tqdm

from lowrank._checks import as_sigmas, check_count

__all__ = [
    "HookedDenoiser",
    "PooledActivations",
    "features_across_sigma",
    "noisy_pixels",
    "split_items",
]


@runtime_checkable
class HookedDenoiser(Protocol):
    """A denoiser whose blocks can be hooked: ``den(x_t, sigma)`` with ``x_t`` ``(B, ...)`` and
    ``sigma`` ``(B,)`` returns the posterior-mean estimate, and ``den.network`` is the module
    whose named submodules (``network.named_modules()``) are the blocks."""

    network: nn.Module

    def __call__(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


def _network(denoiser) -> nn.Module:
    """The module whose submodules :func:`features_across_sigma` hooks."""
    if isinstance(denoiser, HookedDenoiser) and isinstance(denoiser.network, nn.Module):
        return denoiser.network
    if isinstance(denoiser, nn.Module):
        return denoiser
    raise TypeError(
        f"denoiser must be a HookedDenoiser (callable, with a .network module holding the "
        f"blocks) or an nn.Module called as module(x_t, sigma), got {type(denoiser).__name__}"
    )


def _pool(output, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """``(B, C)`` global average of a block's output over its spatial dimensions, or with a
    ``grid`` ``(h, w)`` the ``(B, C * h * w)`` averages over the cells of an ``h x w`` grid;
    blocks that return a tuple (a UNet down block returns its output and its skip connections)
    give their first element."""
    if isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        raise TypeError(f"a hooked layer must output a (B, C, ...) tensor, got {type(output)}")
    if grid is None:
        return output.flatten(2).mean(-1) if output.ndim > 2 else output
    if output.ndim != 4 or output.shape[2] < grid[0] or output.shape[3] < grid[1]:
        raise ValueError(
            f"a {grid[0]}x{grid[1]} readout needs a (B, C, H, W) output with H >= {grid[0]} and "
            f"W >= {grid[1]}, got shape {tuple(output.shape)}"
        )
    return nn.functional.adaptive_avg_pool2d(output, grid).flatten(1)


def _readout(name: str) -> tuple[str, tuple[int, int] | None]:
    """``("mid_block", (2, 2))`` for ``"mid_block@2x2"``, ``("mid_block", None)`` for a block."""
    block, at, grid = name.partition("@")
    if not at:
        return name, None
    rows, x, cols = grid.partition("x")
    if not (x and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
        raise ValueError(
            f"readout {name!r}: write a block with a grid of cells, e.g. {block}@2x2, or the "
            "block alone for the global average"
        )
    return block, (int(rows), int(cols))


def _batch_seed(seed: int, level: int, batch: int) -> int:
    """A seed for one batch at one noise level: SeedSequence mixes the three numbers so that
    neighbouring ones give unrelated streams."""
    state = np.random.SeedSequence([seed, level, batch]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


class PooledActivations:
    """Record the pooled outputs of ``model``'s submodules ``names`` during forward passes.

    ``with PooledActivations(model, ["mid_block", "up_blocks.0@2x2"]) as act: model(x)`` leaves
    ``act.outputs[name]`` = ``(B, C)`` (``(B, C * 4)`` for the 2 x 2 readout) float32 pooled
    activations of the last pass; one hook per block serves all its readouts.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        readouts = {name: _readout(name) for name in names}
        missing = [name for name, (block, _) in readouts.items() if block not in modules]
        if missing or not names:
            known = [name for name in modules if name][:20]
            raise ValueError(f"no layers {missing or names!r} in the model; some it has: {known}")
        self.readouts: dict[str, dict[str, tuple[int, int] | None]] = {}
        for name, (block, grid) in readouts.items():
            self.readouts.setdefault(block, {})[name] = grid
        self.modules = {block: modules[block] for block in self.readouts}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> PooledActivations:
        for block, module in self.modules.items():
            hook = self._recorder(block)
            self._handles.append(module.register_forward_hook(hook))
        return self

    def _recorder(self, block: str):
        def record(module, inputs, output):
            for name, grid in self.readouts[block].items():
                self.outputs[name] = _pool(output, grid).detach().float()

        return record

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@torch.no_grad()
def features_across_sigma(
    denoiser: HookedDenoiser | nn.Module,
    names: Sequence[str],
    x0: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    clean: bool = False,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Pooled features of ``denoiser``'s blocks ``names`` at every noise level.

    Arguments:
        denoiser: a :class:`HookedDenoiser` (its ``network``'s submodules are hooked), or a
            module that is its own network. ``denoiser(x_t, sigma)`` runs it once on a batch
            ``x_t`` with per-row noise levels ``sigma`` ``(B,)`` (the book's convention
            ``x_t = x_0 + sigma n``); its return value is ignored.
        names: submodule names, as in ``denoiser.network.named_modules()``, each with an
            optional spatial readout (``"mid_block@2x2"``; see the module).
        x0: ``(N, ...)`` clean inputs, on the model's device.
        sigmas: ``(S,)`` noise levels > 0.
        clean: feed ``x0`` itself with ``sigma``'s conditioning (the paper's Fig. 11) instead of
            ``x0 + sigma n``.
        batch_size: images per forward pass.
        seed: the noise of batch ``b`` at level ``s`` comes from a generator seeded with
            ``(seed, s, b)``, so it does not depend on the other levels or on the device.
        progress: show a progress bar over the ``S`` levels.

    Returns:
        ``{name: (S, N, C) float32 tensor}`` on the CPU (``C * h * w`` columns for an
        ``h x w`` readout, channel-major).
    """
    sig = as_sigmas(sigmas, torch.float64)
    batch_size = check_count(batch_size, "batch_size")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or len(x0) == 0:
        raise ValueError("x0 must be a non-empty (N, ...) tensor")
    if isinstance(names, str):
        raise TypeError(f"names must be a list of layer names, got the string {names!r}")
    names = list(names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if not names or repeated:
        raise ValueError(
            f"names must be distinct layer names, at least one; repeated: {repeated}"
            if repeated else f"names must be a non-empty list of layer names, got {names!r}"
        )  # fmt: skip
    network = _network(denoiser)
    out: dict[str, list[list[torch.Tensor]]] = {name: [[] for _ in sig] for name in names}
    was_training = network.training
    network.eval()
    try:
        with PooledActivations(network, names) as act:
            for s, x_t, sigma in _noisy_batches(x0, sig, batch_size, seed, clean, progress):
                denoiser(x_t, sigma)
                for name in names:
                    out[name][s].append(act.outputs[name].cpu())
    finally:
        network.train(was_training)
    return {
        name: torch.stack([torch.cat(rows) for rows in per_sigma])
        for name, per_sigma in out.items()
    }


def _noisy_batches(x0, sig, batch_size, seed, clean, progress):
    """Yield ``(level, x_t, sigma (B,))`` batch by batch, level by level: the inputs of
    :func:`features_across_sigma` and :func:`noisy_pixels` (the same noise for both)."""
    for s, sigma in enumerate(tqdm(sig.tolist(), desc="noise levels", disable=not progress)):
        for b, start in enumerate(range(0, len(x0), batch_size)):
            batch = x0[start : start + batch_size]
            x_t = batch
            if not clean:
                gen = torch.Generator().manual_seed(_batch_seed(seed, s, b))
                noise = torch.randn(batch.shape, generator=gen, dtype=batch.dtype)
                x_t = batch + sigma * noise.to(batch.device)
            yield s, x_t, torch.full((len(batch),), sigma, device=batch.device)


@torch.no_grad()
def noisy_pixels(
    x0: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """``(S, N, D)`` float32 noisy inputs ``x0 + sigma n`` flattened, with the very noise
    :func:`features_across_sigma` draws for the same ``batch_size`` and ``seed``: the pixel
    control of a probe sees what the network saw."""
    sig = as_sigmas(sigmas, torch.float64)
    batch_size = check_count(batch_size, "batch_size")
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or len(x0) == 0:
        raise ValueError("x0 must be a non-empty (N, ...) tensor")
    out: list[list[torch.Tensor]] = [[] for _ in sig]
    for s, x_t, _ in _noisy_batches(x0, sig, batch_size, seed, False, False):
        out[s].append(x_t.flatten(1).float().cpu())
    return torch.stack([torch.cat(rows) for rows in out])


def split_items(
    features: dict[str, torch.Tensor], n: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``{name: (S, N, C)}`` features (as :func:`features_across_sigma` returns them for training
    and test images fed in one pass) split into the first ``n`` items and the other ``N - n``:
    ``({name: (S, n, C)}, {name: (S, N - n, C)})``."""
    if not features:
        raise ValueError("features is empty: give at least one name")
    total = {name: F.shape[1] for name, F in features.items() if F.ndim == 3}
    if len(total) != len(features) or len(set(total.values())) != 1:
        shapes = {name: tuple(F.shape) for name, F in features.items()}
        raise ValueError(f"features must be (S, N, C) tensors of the same N items, got {shapes}")
    N = next(iter(total.values()))
    n = check_count(n, "n")
    if n >= N:
        raise ValueError(f"n = {n} leaves no items of the N = {N} for the second part: lower n")
    return (
        {name: F[:, :n] for name, F in features.items()},
        {name: F[:, n:] for name, F in features.items()},
    )
