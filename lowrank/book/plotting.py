"""One seaborn theme and the figure types the book repeats."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

__all__ = ["set_theme", "curve_vs_sigma", "image_rows", "phase_map", "PAPER_STYLE"]

# The paper's numbers are drawn as open black markers so they read as reference points.
PAPER_STYLE = {"marker": "o", "mfc": "none", "color": "black", "ls": "none", "ms": 6}


def set_theme() -> None:
    """Seaborn ``whitegrid`` theme, colour-blind palette, sizes for a book column."""
    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.titlesize": "medium"})


def _numpy(values):
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values


def curve_vs_sigma(
    ax: plt.Axes,
    sigmas: Sequence[float] | torch.Tensor,
    values: Sequence[float] | torch.Tensor,
    label: str,
    stderr: Sequence[float] | torch.Tensor | None = None,
    paper: Sequence[float] | None = None,
    paper_label: str = "paper",
    **style,
) -> plt.Axes:
    """Plot ``values`` against sigma on a log axis, with a 2-standard-error band and the paper's
    values (same sigmas) as open markers."""
    s, v = _numpy(sigmas), _numpy(values)
    (line,) = ax.plot(s, v, marker=".", label=label, **style)
    if stderr is not None:
        e = _numpy(stderr)
        ax.fill_between(s, v - 2 * e, v + 2 * e, color=line.get_color(), alpha=0.2, lw=0)
    if paper is not None:
        ax.plot(s, paper, label=paper_label, **PAPER_STYLE)
    ax.set_xscale("log")
    ax.set_xlabel(r"noise level $\sigma$")
    return ax


def block_energy_heatmap(ax: plt.Axes, energies: Sequence[Sequence[float]] | torch.Tensor,
                         title: str) -> plt.Axes:  # fmt: skip
    """Annotated heatmap of the ``(K, K)`` energy of class ``k`` (rows) in learned block ``l``
    (columns), as from :func:`lowrank.theory.landscape.class_energy_in_blocks`; a recovered ``U``
    shows one ``d`` per row and column."""
    E = _numpy(energies) if isinstance(energies, torch.Tensor) else np.asarray(energies)
    K = E.shape[0]
    sns.heatmap(E, ax=ax, annot=True, fmt=".1f", cmap="mako_r", vmin=0, vmax=E.sum(1).max(),
                cbar=False, square=True, linewidths=0.5,
                xticklabels=[f"block {l + 1}" for l in range(K)],
                yticklabels=[f"class {k + 1}" for k in range(K)])  # fmt: skip
    ax.set_title(title)
    return ax


def image_rows(ax: plt.Axes, rows: Sequence[torch.Tensor], title: str | None = None) -> plt.Axes:
    """Draw ``rows`` of images, each ``(B, C, H, W)`` in the model range [-1, 1] with the same
    ``B``, as one picture: row ``i`` above row ``i + 1``, images side by side, grey for one
    channel and RGB for three; no axes. Samples above their nearest training images, say."""
    if not rows or len({tuple(r.shape) for r in rows}) != 1 or rows[0].ndim != 4:
        shapes = [tuple(r.shape) for r in rows]
        raise ValueError(f"rows must be (B, C, H, W) tensors of one shape, got {shapes}")
    if rows[0].shape[1] not in (1, 3):
        raise ValueError(f"rows need 1 or 3 channels, got {rows[0].shape[1]}")
    # (B, C, H, W) per row -> (C, rows * H, B * W), then [-1, 1] -> [0, 1]
    picture = torch.cat([torch.cat(list(r.detach().cpu().float()), dim=2) for r in rows], dim=1)
    picture = ((picture + 1) / 2).clamp(0, 1)
    if picture.shape[0] == 1:
        ax.imshow(picture[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(picture.permute(1, 2, 0).numpy())
    if title is not None:
        ax.set_title(title, fontsize="small")
    ax.set_axis_off()
    return ax


def phase_map(
    ax: plt.Axes,
    values: Sequence[Sequence[float]] | np.ndarray,
    unimodal: Sequence[Sequence[bool]] | np.ndarray,
    ticks: tuple[Sequence, Sequence],
    *,
    title: str,
    fmt: str = ".2f",
    mark: tuple[int, int] | None = None,
    **heatmap,
) -> plt.Axes:
    """A phase diagram: ``values`` ``(R, C)`` as an annotated heatmap over ``ticks = (columns,
    rows)`` (x; y, first row at the bottom), unimodal cells in bold with a star, and a black box
    around the cell ``mark = (row, col)`` (the paper's setting). Missing values (NaN) are left
    blank; ``heatmap`` goes to :func:`seaborn.heatmap` (``cmap``, ``vmin``, ``center``...)."""
    columns, rows = ticks
    V = np.asarray(values, dtype=float)
    U = np.asarray(unimodal, dtype=bool)
    if V.shape != U.shape or V.shape != (len(rows), len(columns)):
        raise ValueError(
            f"values {V.shape} and unimodal {U.shape} must both be (len(rows), len(columns)) = "
            f"{(len(rows), len(columns))}"
        )
    options = {"cmap": "mako_r", "linewidths": 0.5, "cbar": False} | heatmap
    sns.heatmap(V[::-1], ax=ax, xticklabels=list(columns), yticklabels=list(rows)[::-1], **options)
    mesh = ax.collections[0]
    for r, c in np.ndindex(V.shape):
        if np.isnan(V[r, c]):
            continue
        shade = mesh.cmap(mesh.norm(V[r, c]))
        light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
        ax.text(c + 0.5, len(rows) - 0.5 - r, format(V[r, c], fmt) + ("*" if U[r, c] else ""),
                ha="center", va="center", fontsize="x-small", color="black" if light else "white",
                fontweight="bold" if U[r, c] else "normal")  # fmt: skip
    if mark is not None:
        r, c = mark
        ax.add_patch(plt.Rectangle((c, len(rows) - 1 - r), 1, 1, fill=False, lw=2, color="black"))
    ax.set_title(title)
    return ax
