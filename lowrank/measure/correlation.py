"""Rank correlation: :func:`spearman`; :func:`rank_correlation`, Spearman's correlation with a
percentile bootstrap interval over the paired items; :func:`rank_correlation_p`, its permutation
p-value, exact up to :data:`MAX_EXACT_PAIRS` pairs and Monte Carlo beyond; and
:func:`smallest_p`, the least p a test of ``n`` pairs can give (at ``n = 4`` it is 1/12: no such
test reaches 0.05). Chapter 8 reports the Frechet distance against peak probe accuracy over
training checkpoints with the permutation p, not with a bootstrap interval, for this reason:

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
    "spearman",
    "RankCorrelation",
    "rank_correlation",
    "rank_correlation_p",
    "smallest_p",
    "MAX_EXACT_PAIRS",
    "MONTE_CARLO_PAIRINGS",
]

#: The most pairs :func:`rank_correlation_p` permutes exactly (9! = 362,880 pairings).
MAX_EXACT_PAIRS = 9
#: The random pairings :func:`rank_correlation_p` draws by default beyond MAX_EXACT_PAIRS.
MONTE_CARLO_PAIRINGS = 20_000


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


def _pairs(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Two paired sequences of >= 3 finite values as float64 vectors, or a ValueError."""
    a = torch.as_tensor(x, dtype=torch.float64).flatten()
    b = torch.as_tensor(y, dtype=torch.float64).flatten()
    if a.shape != b.shape or len(a) < 3:
        raise ValueError(f"need two paired sequences of >= 3 values, got {len(a)} and {len(b)}")
    if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
        raise ValueError("x and y must be finite")
    return a, b


def spearman(x, y) -> float:
    """Spearman's rank correlation of two paired sequences of ``>= 3`` finite values (ties get
    their average rank); ``nan`` when one side's values are all tied."""
    a, b = _pairs(x, y)
    return _spearman(a[None], b[None])[0].item()


def rank_correlation(
    x, y, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> RankCorrelation:
    """Spearman's rank correlation of two paired sequences and a bootstrap percentile interval
    at ``level`` (pairs resampled with replacement, ``resamples`` times, seeded).

    Ties get their average rank. A resample whose ranks are all
    tied in ``x`` or ``y`` has no correlation and is left out of the interval.
    """
    a, b = _pairs(x, y)
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


def smallest_p(n: int, resamples: int = MONTE_CARLO_PAIRINGS) -> float:
    """The smallest two-sided p that :func:`rank_correlation_p` can give for ``n >= 3`` untied
    pairs: ``2 / n!`` when exact (``n <= MAX_EXACT_PAIRS``; the observed order and its reverse
    are the only pairings with ``|rho| = 1``), ``1 / (1 + resamples)`` by Monte Carlo beyond.
    A family correction over tests that cannot reach the level spends its alpha on nothing."""
    n = check_count(n, "n")
    if n < 3:
        raise ValueError(f"n must be at least 3 pairs, got {n}")
    if n <= MAX_EXACT_PAIRS:
        return 2 / math.factorial(n)
    return 1 / (1 + check_count(resamples, "resamples"))


def rank_correlation_p(x, y, resamples: int | None = None, seed: int = 0) -> float:
    """Two-sided permutation p-value of Spearman's correlation of ``n >= 3`` pairs: the share
    of pairings of ``y`` with ``x`` whose correlation is at least as large in absolute value as
    the observed one (ties count as at least as large).

    Up to :data:`MAX_EXACT_PAIRS` pairs every one of the ``n!`` pairings is enumerated (the
    observed one and its reverse among them, so ``p >= 2/n!`` without ties; ``resamples`` and
    ``seed`` are not used). Beyond, ``resamples`` random pairings (default
    :data:`MONTE_CARLO_PAIRINGS`, seeded) give ``(1 + hits) / (1 + resamples)``, a valid p that
    counts the observed pairing once (Phipson and Smyth 2010)."""
    a, b = _pairs(x, y)
    observed = _spearman(a[None], b[None])[0]
    if not torch.isfinite(observed):
        raise ValueError("x or y has all its values tied: no correlation to test")
    # ranks once: the ranks of a permuted y are its ranks permuted
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    exact = len(a) <= MAX_EXACT_PAIRS
    if exact:
        pairings = torch.tensor(list(itertools.permutations(range(len(b)))))
    else:
        draws = check_count(MONTE_CARLO_PAIRINGS if resamples is None else resamples, "resamples")
        gen = torch.Generator().manual_seed(seed)
        pairings = torch.rand(draws, len(b), generator=gen).argsort(-1)
    rhos = (rb[pairings] @ ra) / (ra.norm() * rb.norm())
    # the same pairing computed in another order differs in the last bits
    hits = (rhos.abs() >= observed.abs() - 1e-12).double()
    return hits.mean().item() if exact else (1 + hits.sum().item()) / (1 + len(pairings))
