"""Rank correlation with an interval: :func:`rank_correlation`, Spearman's correlation with a
percentile bootstrap interval over the paired items (chapter 8: Frechet distance against peak
probe accuracy over training checkpoints), and :func:`rank_correlation_p`, its exact
permutation p-value.

The bootstrap treats the pairs as independent draws. Checkpoints of one training run are not:
they form a series, and resampling them gives intervals that hug +-1 (chapter 8's long run:
[+0.29, +1.00] over 8 checkpoints). The permutation p asks how often a random pairing of the
same values correlates at least as strongly; its null, exchangeable pairings, fails for two
series that both trend with training time as much as the bootstrap's does. Over checkpoints of
one run, read a small p as "the two move together over training", not as evidence that one
tracks the other beyond their common trend.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from lowrank._checks import check_count, check_open_unit

__all__ = [
    "RankCorrelation",
    "rank_correlation",
    "rank_correlation_p",
    "MAX_EXACT_PAIRS",
]

#: The most pairs :func:`rank_correlation_p` permutes exactly (9! = 362,880 pairings).
MAX_EXACT_PAIRS = 9


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rank correlation and its bootstrap percentile interval.

    Attributes:
        rho: the correlation of the pairs.
        low, high: the interval at ``level`` (NaN when every resample was tied).
        level: its confidence.
        resamples: the bootstrap resamples drawn.
    """

    rho: float
    low: float
    high: float
    level: float
    resamples: int


def rank_correlation(
    x, y, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> RankCorrelation:
    """Spearman's rank correlation of two paired sequences and a bootstrap percentile interval
    at ``level`` (pairs resampled with replacement, ``resamples`` times, seeded).

    Ties get their average rank. A resample whose ranks are all
    tied in ``x`` or ``y`` has no correlation and is left out of the interval.
    """
    a = torch.as_tensor(x, dtype=torch.float64).flatten()
    b = torch.as_tensor(y, dtype=torch.float64).flatten()
    if a.shape != b.shape or len(a) < 3:
        raise ValueError(f"need two paired sequences of >= 3 values, got {len(a)} and {len(b)}")
    if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
        raise ValueError("x and y must be finite")
    level = check_open_unit(level, "level")
    rho = _spearman(a[None], b[None])[0].item()
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(a), (check_count(resamples, "resamples"), len(a)), generator=gen)
    boot = _spearman(a[rows], b[rows])
    boot = boot[torch.isfinite(boot)]
    tail = (1 - level) / 2
    if len(boot) == 0:
        return RankCorrelation(rho, math.nan, math.nan, level, resamples)
    low, high = torch.quantile(boot, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return RankCorrelation(rho, low.item(), high.item(), level, resamples)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last dimension (ties share the mean of their positions)."""
    order = v.argsort(-1)
    position = torch.empty_like(v)
    position.scatter_(-1, order, torch.arange(v.shape[-1], dtype=v.dtype).expand_as(v))
    # average over ties: for each value, the mean position of the values equal to it
    equal = (v[..., :, None] == v[..., None, :]).to(v.dtype)
    return (equal @ position[..., None])[..., 0] / equal.sum(-1)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation of the ranks; NaN where a row's ranks are all tied."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    den = (ra.square().sum(-1) * rb.square().sum(-1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(-1) / den.clamp_min(1e-300), math.nan)


def rank_correlation_p(x, y) -> float:
    """Exact two-sided permutation p-value of Spearman's correlation of ``n`` pairs
    (``3 <= n <= MAX_EXACT_PAIRS``): the share of all ``n!`` pairings of ``y`` with ``x`` whose
    correlation is at least as large in absolute value as the observed one (which is among
    them, so ``p >= 1/n!``; ties count as at least as large)."""
    a = torch.as_tensor(x, dtype=torch.float64).flatten()
    b = torch.as_tensor(y, dtype=torch.float64).flatten()
    if a.shape != b.shape or not 3 <= len(a) <= MAX_EXACT_PAIRS:
        raise ValueError(
            f"need two paired sequences of 3 to {MAX_EXACT_PAIRS} values (n! pairings are "
            f"enumerated), got {len(a)} and {len(b)}"
        )
    if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
        raise ValueError("x and y must be finite")
    observed = _spearman(a[None], b[None])[0]
    if not torch.isfinite(observed):
        raise ValueError("x or y has all its values tied: no correlation to test")
    # ranks once: the ranks of a permuted y are its ranks permuted
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    pairings = torch.tensor(list(itertools.permutations(range(len(b)))))
    rhos = (rb[pairings] @ ra) / (ra.norm() * rb.norm())
    # the same pairing computed in another order differs in the last bits
    return (rhos.abs() >= observed.abs() - 1e-12).double().mean().item()
