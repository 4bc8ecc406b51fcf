"""Does a diffusion model copy its training images or make new ones? Scores on pixels and on
embeddings, with no downloaded weights.

* :func:`nearest_neighbours`: the ``k`` nearest reference rows of every query, by L2 distance or
  cosine similarity, streamed over chunks of the references (memory ``O(B chunk)`` whatever
  their number, as :class:`lowrank.theory.denoisers.EmpiricalDenoiser` streams a training set);
* :func:`copy_ratio`, :func:`memorized_fraction`, :func:`ratios_and_nearest`: a sample is a copy
  when its nearest training image is much nearer than the second nearest, :math:`d_1 / d_2 <
  1/3` (the rule of Yoon et al. 2023 and Bonnaire et al. 2025, on pixels);
* :func:`similarity_threshold`, :func:`generalization_score`: the paper's generalization score,
  the fraction of samples whose nearest training image (cosine similarity of embeddings) is
  **less** similar than a threshold; the paper's threshold (0.6) belongs to SSCD's embedding, so
  ours is calibrated: the similarity that a share ``quantile`` of real held-out images stays
  below, with the same training set.

The embedding is :mod:`lowrank.nets.classifier`'s; :mod:`lowrank.experiments.size_sweep`
assesses a network with all of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lowrank._checks import check_count, check_real, check_rows

__all__ = [
    "COPY_RATIO",
    "Neighbours",
    "nearest_neighbours",
    "copy_ratio",
    "memorized_fraction",
    "similarity_threshold",
    "generalization_score",
    "CopyRatios",
    "ratios_and_nearest",
]


COPY_RATIO = 1 / 3  # d1 / d2 below this: a copy (Yoon et al. 2023; Bonnaire et al. 2025)


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest references of each query: ``values`` (distances, or similarities for
    the cosine metric) and ``indices`` (rows of the references), both ``(B, k)``."""

    values: torch.Tensor
    indices: torch.Tensor


def nearest_neighbours(
    queries: torch.Tensor,
    references: torch.Tensor,
    k: int = 1,
    metric: str = "l2",
    chunk_size: int = 8192,
    dtype: torch.dtype = torch.float64,
) -> Neighbours:
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
        Both ``(B, k)``: the distances or similarities, and their rows of ``references``.
    """
    q, r = check_rows(queries, "queries").to(dtype), check_rows(references, "references")
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
    return Neighbours(best, where)


def copy_ratio(samples: torch.Tensor, train: torch.Tensor, chunk_size: int = 8192) -> torch.Tensor:
    """``(B,)`` ratios :math:`d_1 / d_2` of every sample's distances to its nearest and second
    nearest training image (pixels, L2). Near 0: a copy of one training image; near 1: as close
    to two of them, which a copy never is.

    Duplicates: the neighbours are **distinct** training images. A training image that occurs
    twice is one image to copy; counting it twice would make its exact copy equidistant from
    its "two" nearest images (ratio 0/0, read as 1: "not a copy"). So repeated rows are
    merged first: the ratio of a near copy is small however often its image repeats."""
    return ratios_and_nearest(samples, train, chunk_size).ratios


@dataclass(frozen=True)
class CopyRatios:
    """Every sample's copy ratio ``d_1 / d_2`` and the row of its nearest training image."""

    ratios: torch.Tensor
    nearest: torch.Tensor


def ratios_and_nearest(samples, train, chunk_size=8192) -> CopyRatios:
    """:func:`copy_ratio` and the row of every sample's nearest training image (its first
    occurrence, for a repeated image)."""
    rows = check_rows(train, "train")
    distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
    if len(distinct) < 2:
        raise ValueError(
            f"a copy ratio needs at least 2 distinct training images, got {len(distinct)}"
        )
    # the first row of `train` holding each distinct image
    first = torch.full((len(distinct),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), reduce="amin")
    two = nearest_neighbours(samples, distinct, k=2, chunk_size=chunk_size)
    d, where = two.values, two.indices
    return CopyRatios(d[:, 0] / d[:, 1].clamp_min(1e-30), first.to(where.device)[where[:, 0]])


def memorized_fraction(
    samples: torch.Tensor, train: torch.Tensor, ratio: float = COPY_RATIO, chunk_size: int = 8192
) -> float:
    """The share of samples that are copies, :func:`copy_ratio` below ``ratio`` (1/3)."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must lie in (0, 1), got {ratio}")
    return (copy_ratio(samples, train, chunk_size) < ratio).double().mean().item()


def similarity_threshold(
    heldout: torch.Tensor, train: torch.Tensor, quantile: float = 0.95
) -> float:
    """The cosine similarity that a share ``quantile`` of real held-out images stays below, each
    with its most similar training image: above it, a sample is nearer a training image than
    almost any real unseen image is. Embeddings in, ``(M, p)`` and ``(N, p)``."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    nearest = nearest_neighbours(heldout, train, metric="cosine").values
    return torch.quantile(nearest[:, 0], quantile).item()


def generalization_score(samples: torch.Tensor, train: torch.Tensor, threshold: float) -> float:
    """The share of samples whose most similar training image (cosine similarity of
    embeddings) stays at or below ``threshold``: new images rather than copies."""
    threshold = check_real(threshold, "threshold", -1.0, 1.0)  # a cosine similarity
    nearest = nearest_neighbours(samples, train, metric="cosine").values
    return (nearest[:, 0] <= threshold).double().mean().item()
