"""Angles and distances between what a model learned and the truth, or between two sets.

* :func:`principal_angles`, :func:`block_angles`: principal angles between subspaces (the
  recovered bases of chapter 4 against the true ones, block by block);
* :func:`sliced_wasserstein`: the sliced Wasserstein distance between two point clouds (a
  network's samples against the data, chapter 6);
* :func:`frechet_distance`: the Frechet distance between Gaussians fitted to two sets of
  embeddings, computed by ``torchmetrics`` (an FID stand-in: not comparable to Inception FID);
* :func:`frechet_bootstrap`: the same distance over bootstrap resamples of one side's rows, the
  other side fixed: its spread over the samples drawn. One seed draws the same rows for every
  call, so two checkpoints' samples of the same seeds give a paired bootstrap of a difference.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from lowrank._checks import (
    as_float64,
    check_count,
    check_rows,
)

__all__ = [
    "principal_angles",
    "block_angles",
    "sliced_wasserstein",
    "frechet_distance",
    "frechet_bootstrap",
]


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles in degrees, ascending, between the column spans of orthonormal
    ``A`` (n, p) and ``B`` (n, q)."""
    cosines = torch.linalg.svdvals(A.to(torch.float64).T @ B.to(torch.float64)).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cosines))  # svdvals descend, so the angles ascend


def block_angles(
    U: torch.Tensor, class_bases: list[torch.Tensor], match: bool = False
) -> torch.Tensor:
    """``(K,)`` largest principal angle, in degrees, between block ``k`` of ``U`` (its columns
    split by the class ranks, in order) and class ``k``'s basis: how far a learned ``U`` is from
    the truth when its blocks are meant to be the classes in the same order.

    With ``match=True`` the blocks may come in any order (a model trained without labels
    numbers its blocks arbitrarily): the order used is the permutation of equal-rank blocks
    that minimizes the sum of the angles, found by enumeration (``K <= 8``).
    """
    ranks = [B.shape[1] for B in class_bases]
    if U.shape[1] != sum(ranks):
        raise ValueError(f"U has {U.shape[1]} columns, the class ranks add up to {sum(ranks)}")
    blocks = torch.split(U.detach(), ranks, dim=1)
    if not match:
        return torch.stack(
            [principal_angles(b, B).max() for b, B in zip(blocks, class_bases, strict=True)]
        )
    K = len(class_bases)
    if len(set(ranks)) != 1 or K > 8:
        raise ValueError("match=True needs equal class ranks and at most 8 classes")
    # angle[l, k]: block l against class k
    angle = torch.stack(
        [torch.stack([principal_angles(b, B).max() for B in class_bases]) for b in blocks]
    )
    best = min(
        itertools.permutations(range(K)),
        key=lambda perm: sum(angle[k_block, k].item() for k, k_block in enumerate(perm)),
    )
    return torch.stack([angle[k_block, k] for k, k_block in enumerate(best)])


def sliced_wasserstein(
    X: torch.Tensor,
    Y: torch.Tensor,
    projections: int = 256,
    generator: torch.Generator | None = None,
    quantiles: int = 512,
) -> float:
    r"""Squared sliced 2-Wasserstein distance between the samples ``X`` ``(N, p)`` and ``Y``
    ``(M, p)``, in float64:

    .. math:: SW_2^2(X, Y) = E_\theta\big[W_2^2(\theta^\top X, \theta^\top Y)\big],
              \qquad \theta \sim \mathrm{Uniform}(S^{p-1}),

    the expectation over ``projections`` random unit directions (from ``generator``), each
    one-dimensional :math:`W_2^2` the mean squared gap between the two samples' quantiles at
    ``quantiles`` evenly spaced levels (exact when ``N = M = quantiles``: the sorted samples
    matched in order). For two Gaussians with the same isotropic covariance it is
    :math:`\|\mu_X - \mu_Y\|^2 / p`.
    """
    X, Y = as_float64(X, "X"), as_float64(Y, "Y")
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1] or not len(X) or not len(Y):
        raise ValueError(
            f"X and Y must be non-empty (N, p) and (M, p), got {tuple(X.shape)}, {tuple(Y.shape)}"
        )
    projections = check_count(projections, "projections")
    quantiles = check_count(quantiles, "quantiles")
    theta = torch.randn(X.shape[1], projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    levels = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    gap = _quantiles(X @ theta, levels) - _quantiles(Y @ theta, levels)  # (quantiles, L)
    return gap.square().mean().item()


def _quantiles(samples: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles at ``levels`` in (0, 1) of each column of ``samples`` ``(N, L)``: the sorted
    sample at position ``level * N - 1/2``, linearly interpolated (so ``N`` midpoint levels
    give the sorted samples themselves)."""
    ordered = samples.sort(0).values
    position = (levels * len(ordered) - 0.5).clamp(0, len(ordered) - 1)
    low = position.floor().long()
    high = (low + 1).clamp_max(len(ordered) - 1)
    weight = (position - low)[:, None]
    return ordered[low] * (1 - weight) + ordered[high] * weight


class _Features(nn.Module):
    """The identity on precomputed features, as torchmetrics' custom feature extractor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    r"""Frechet distance between Gaussians fitted to two feature sets ``(N_a, p)`` and
    ``(N_b, p)``: :math:`\|\mu_a - \mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b -
    2 (\Sigma_a \Sigma_b)^{1/2})` with unbiased covariances, by ``torchmetrics``' FID on the
    features themselves (its statistics in float64)."""
    # deferred: torchmetrics takes seconds to import and only this function needs it
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = check_rows(features_a, "features_a"), check_rows(features_b, "features_b")
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"need two sets of >= 2 rows of one width, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    fid = FrechetInceptionDistance(feature=_Features(), input_img_size=(a.shape[1],))
    fid.update(a.double(), real=True)
    fid.update(b.double(), real=False)
    return fid.compute().item()


def _mean_and_covariance(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance of each batch of rows, ``(..., N, p)`` in float64."""
    mean = rows.mean(-2)
    centred = rows - mean[..., None, :]
    return mean, centred.transpose(-1, -2) @ centred / (rows.shape[-2] - 1)


def frechet_bootstrap(
    reference: torch.Tensor, samples: torch.Tensor, resamples: int = 200, seed: int = 0
) -> torch.Tensor:
    r"""The Frechet distance of :func:`frechet_distance` between ``reference`` ``(M, p)`` and
    ``resamples`` bootstrap resamples of the rows of ``samples`` ``(N, p)`` (drawn with
    replacement, seeded), as a ``(resamples,)`` float64 tensor.

    The reference's square root is taken once: :math:`\operatorname{tr}(\Sigma_r \Sigma_s)^{1/2}
    = \operatorname{tr}(\Sigma_r^{1/2} \Sigma_s \Sigma_r^{1/2})^{1/2}`, the latter a symmetric
    matrix whose eigenvalues are clamped at 0 (rounding). The rows drawn depend only on ``N``,
    ``resamples`` and ``seed``: the same seed resamples the same sample indices for two sets of
    samples, so their bootstraps subtract into a paired bootstrap of the difference.
    """
    ref = check_rows(reference, "reference").double()
    drawn = check_rows(samples, "samples").double()
    if ref.shape[1] != drawn.shape[1] or min(len(ref), len(drawn)) < 2:
        raise ValueError(
            f"need two sets of >= 2 rows of one width, got {tuple(ref.shape)}, "
            f"{tuple(drawn.shape)}"
        )
    resamples = check_count(resamples, "resamples")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(drawn), (resamples, len(drawn)), generator=gen)
    mu_r, sigma_r = _mean_and_covariance(ref)
    values, vectors = torch.linalg.eigh(sigma_r)
    root_r = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    distances = []
    for chunk in rows.split(50):  # (50, N, p) at a time: memory, not speed
        mu_s, sigma_s = _mean_and_covariance(drawn[chunk])
        middle = root_r @ sigma_s @ root_r
        cross = torch.linalg.eigvalsh((middle + middle.transpose(-1, -2)) / 2)
        trace = sigma_r.trace() + sigma_s.diagonal(dim1=-2, dim2=-1).sum(-1)
        mean_term = (mu_s - mu_r).square().sum(-1)
        distances.append(mean_term + trace - 2 * cross.clamp_min(0).sqrt().sum(-1))
    return torch.cat(distances)
