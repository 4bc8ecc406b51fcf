r"""Readable torch reference of the batched projection denoiser.

The exact posterior mean of a low-rank Gaussian mixture, written in the union coordinates
``z = W^T x_t`` (see :mod:`lowrank.mixtures` and :mod:`lowrank.denoisers`):

1. ``z = x_t W``                                   (GEMM, ``B x n x m``);
2. per row and class: log-likelihood, softmax weights ``w``, shrinkage
   ``lambda / (lambda + sigma^2)``, giving ``y = W^T x_hat`` (``B x K x m`` elementwise, or
   ``B x K x m x m`` when the classes need their own frames ``Q_k``);
3. ``x_hat = y W^T``                               (GEMM, ``B x m x n``).

Runs on any device in float32 or float64; float16 and bfloat16 inputs are computed in float32
(the accumulation precision the fused kernel uses) and returned in their own dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "Posterior",
    "ProjectionParams",
    "VarianceLevels",
    "posterior_coordinates",
    "posterior_coordinates_grouped",
    "coordinates_posterior",
    "projection_denoise",
    "variance_levels",
]

# More distinct variances than this and the grouped stage 2 stops paying for itself.
MAX_LEVELS = 8

# Rows per step of stage 2: bounds the (rows, K, m) temporaries to tens of MB.
CHUNK_ROWS = 4096
HALF_DTYPES = (torch.float16, torch.bfloat16)
# How a fused kernel may multiply float32 tiles: exact products, or TensorFloat-32.
FLOAT32_PRECISIONS = ("ieee", "tf32")


@dataclass(frozen=True)
class ProjectionParams:
    """Mixture tensors on one device and dtype.

    Attributes:
        W: ``(n, m)`` orthonormal union basis.
        lam: ``(K, m)`` variances; along ``W``'s coordinates when ``Q`` is ``None``, else along
            each class frame ``Q[k]``'s columns.
        mean: ``(K, m)`` class means in coordinates.
        log_pi: ``(K,)`` log class probabilities.
        Q: ``(K, m, m)`` orthonormal class frames, or ``None`` when every class covariance is
            diagonal in ``W``'s coordinates.
        levels: ``(L,)`` distinct values of ``lam`` and ``indicator`` ``(L, K, m)`` with
            ``indicator[l, k, j] = (lam[k, j] == levels[l])``, for zero-mean diagonal mixtures
            with few distinct variances (every MoLRG: ``L = 2``); ``None`` otherwise.
    """

    W: torch.Tensor
    lam: torch.Tensor
    mean: torch.Tensor
    log_pi: torch.Tensor
    Q: torch.Tensor | None
    levels: torch.Tensor | None = None
    indicator: torch.Tensor | None = None


@dataclass(frozen=True)
class Posterior:
    """What a mixture's optimal denoiser knows of ``x_0`` given ``x_t``, for ``B`` rows.

    Attributes:
        x_hat: ``(B, n)`` posterior mean :math:`E[x_0 \\mid x_t]`, or ``None`` where only its
            coordinates were computed (stage 2).
        coordinates: ``(B, m)`` union coordinates ``W^T x_hat``: for a MoLRG the paper's
            feature ``h``; ``None`` where there is no union basis (the dense check).
        weights: ``(B, K)`` posterior class probabilities.
    """

    x_hat: torch.Tensor | None
    coordinates: torch.Tensor | None
    weights: torch.Tensor


@dataclass(frozen=True)
class VarianceLevels:
    """The distinct variances of a diagonal mixture, for :func:`posterior_coordinates_grouped`.

    Attributes:
        levels: ``(L,)`` distinct values of ``lam``.
        indicator: ``(L, K, m)`` with ``indicator[l, k, j] = (lam[k, j] == levels[l])``.
    """

    levels: torch.Tensor
    indicator: torch.Tensor


def variance_levels(lam: torch.Tensor, mean: torch.Tensor) -> VarianceLevels | None:
    """The variance levels for :func:`posterior_coordinates_grouped`, or ``None`` when the
    means are not all zero or ``lam`` has more than ``MAX_LEVELS`` distinct values.

    Arguments:
        lam: ``(K, m)`` per-coordinate variances of a diagonal mixture.
        mean: ``(K, m)`` class means in coordinates.
    """
    levels = torch.unique(lam)
    if bool(torch.any(mean != 0)) or levels.numel() > MAX_LEVELS:
        return None
    indicator = (lam[None] == levels[:, None, None]).to(lam.dtype)
    return VarianceLevels(levels, indicator)


def posterior_coordinates(z: torch.Tensor, s2: torch.Tensor, p: ProjectionParams) -> Posterior:
    """Stage 2: the posterior's ``(B, m)`` coordinates ``y = W^T x_hat`` and ``(B, K)``
    weights ``w`` (no ``x_hat``).

    Arguments:
        z: ``(B, m)`` coordinates ``W^T x_t``.
        s2: ``(B, 1)`` noise variances.
    """
    s2 = s2[:, :, None]  # (B, 1, 1)
    u = z[:, None, :] - p.mean  # (B, K, m): x_t - mu_k in coordinates
    q = u if p.Q is None else torch.einsum("bkm,kmj->bkj", u, p.Q)
    var = p.lam + s2  # lambda + sigma^2
    # log(lambda + sigma^2) = log sigma^2 + log1p(lambda / sigma^2): the first part is common to
    # all classes and dropped, which keeps class differences exact in float32 when
    # sigma^2 >> lambda (log(1e8 + 1) would round them away).
    logits = p.log_pi - 0.5 * (q.square() / var + torch.log1p(p.lam / s2)).sum(-1)
    w = torch.softmax(logits, dim=-1)
    shrunk = q * (p.lam / var) * w[:, :, None]
    if p.Q is None:
        y = w @ p.mean + shrunk.sum(1)
    else:
        y = w @ p.mean + torch.einsum("bkj,kmj->bm", shrunk, p.Q)
    return Posterior(x_hat=None, coordinates=y, weights=w)


def posterior_coordinates_grouped(
    z: torch.Tensor, s2: torch.Tensor, p: ProjectionParams
) -> Posterior:
    """Stage 2 as small matrix products, for zero-mean diagonal mixtures (``p.levels`` set).

    Grouping the coordinates by variance level ``l``, the class logits are
    ``-1/2 sum_l [E_lk / (levels_l + s2) + c_lk log1p(levels_l / s2)]`` with energies
    ``E = z^2 @ indicator`` and counts ``c``, and the shrinkage of coordinate ``j`` is
    ``sum_l levels_l / (levels_l + s2) (w @ indicator_l)_j``: ``O(B K m L)`` flops in matrix
    products instead of ``O(B K m)`` memory passes. Same value as :func:`posterior_coordinates`
    (every term is non-negative, so no new cancellation).
    """
    L, K, m = p.indicator.shape
    var = p.levels + s2  # (B, L)
    energy = (z.square() @ p.indicator.reshape(L * K, m).T).view(-1, L, K)
    counts = p.indicator.sum(-1)  # (L, K)
    log_terms = torch.log1p(p.levels / s2)[:, :, None] * counts  # (B, L, K)
    logits = p.log_pi - 0.5 * (energy / var[:, :, None] + log_terms).sum(1)
    w = torch.softmax(logits, dim=-1)
    per_level = (w @ p.indicator.transpose(0, 1).reshape(K, L * m)).view(-1, L, m)
    gain = torch.einsum("bl,blm->bm", p.levels / var, per_level)
    return Posterior(x_hat=None, coordinates=z * gain, weights=w)


def coordinates_posterior(z: torch.Tensor, s2: torch.Tensor, p: ProjectionParams) -> Posterior:
    """Stage 2 over any number of rows, in chunks of ``CHUNK_ROWS``: the grouped form when
    ``p.levels`` is set, else the elementwise one (coordinates and weights, no ``x_hat``)."""
    stage_2 = posterior_coordinates if p.levels is None else posterior_coordinates_grouped
    y, w = torch.empty_like(z), z.new_empty(z.shape[0], p.lam.shape[0])
    for start in range(0, z.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        part = stage_2(z[rows], s2[rows], p)
        y[rows], w[rows] = part.coordinates, part.weights
    return Posterior(x_hat=None, coordinates=y, weights=w)


def projection_denoise(x_t: torch.Tensor, sigma: torch.Tensor, p: ProjectionParams) -> Posterior:
    """The posterior: mean, features (coordinates) and weights, ``(B, n)``, ``(B, m)``,
    ``(B, K)``, in ``x_t``'s dtype.

    Arguments:
        x_t: ``(B, n)`` noisy inputs, in ``p``'s dtype (or half precision with float32 ``p``).
        sigma: ``(B,)`` noise levels > 0.
    """
    out_dtype = x_t.dtype
    x = x_t.float() if out_dtype in HALF_DTYPES else x_t
    s2 = sigma.to(x.dtype).square()[:, None]
    z = x @ p.W
    stage_2 = coordinates_posterior(z, s2, p)
    y, w = stage_2.coordinates, stage_2.weights
    x_hat = y @ p.W.T
    return Posterior(
        x_hat=x_hat.to(out_dtype), coordinates=y.to(out_dtype), weights=w.to(out_dtype)
    )
