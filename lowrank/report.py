"""Plain-text tables that put the paper's numbers next to ours."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["compare_table"]


def _floats(values) -> list[float]:
    return values.tolist() if isinstance(values, torch.Tensor) else [float(v) for v in values]


def compare_table(
    sigmas: Sequence[float] | torch.Tensor,
    ours: Sequence[float] | torch.Tensor,
    paper: Sequence[float] | None = None,
    stderr: Sequence[float] | torch.Tensor | None = None,
    title: str = "",
    digits: int = 2,
) -> str:
    """One row per sigma: ``sigma | paper | ours (+- stderr) | gap``, the gap relative to the
    paper's value. Missing paper values print as ``-``."""
    s, o = _floats(sigmas), _floats(ours)
    p = _floats(paper) if paper is not None else [None] * len(s)
    e = _floats(stderr) if stderr is not None else [None] * len(s)
    if not len(s) == len(o) == len(p) == len(e):
        raise ValueError("sigmas, ours, paper and stderr must have the same length")
    lines = [title] if title else []
    lines.append(f"{'sigma':>7} {'paper':>9} {'ours':>9} {'+-':>7} {'gap':>8}")
    for sig, ours_v, paper_v, err in zip(s, o, p, e, strict=True):
        paper_txt = f"{paper_v:.{digits}f}" if paper_v is not None else "-"
        err_txt = f"{err:.{digits}f}" if err is not None else ""
        gap = f"{(ours_v - paper_v) / abs(paper_v):+.1%}" if paper_v else ""
        lines.append(f"{sig:>7.3f} {paper_txt:>9} {ours_v:>9.{digits}f} {err_txt:>7} {gap:>8}")
    return "\n".join(lines)
