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

__all__ = ["ProjectionParams", "posterior_coordinates", "projection_denoise"]

# Rows per step of stage 2: bounds the (rows, K, m) temporaries to tens of MB.
CHUNK_ROWS = 4096
HALF_DTYPES = (torch.float16, torch.bfloat16)


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
    """

    W: torch.Tensor
    lam: torch.Tensor
    mean: torch.Tensor
    log_pi: torch.Tensor
    Q: torch.Tensor | None


def posterior_coordinates(
    z: torch.Tensor, s2: torch.Tensor, p: ProjectionParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2: ``(B, m)`` coordinates ``y = W^T x_hat`` and ``(B, K)`` weights ``w``.

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
    return y, w


def projection_denoise(
    x_t: torch.Tensor, sigma: torch.Tensor, p: ProjectionParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior mean, features and weights: ``(B, n)``, ``(B, m)``, ``(B, K)``.

    Arguments:
        x_t: ``(B, n)`` noisy inputs, in ``p``'s dtype (or half precision with float32 ``p``).
        sigma: ``(B,)`` noise levels > 0.
    """
    out_dtype = x_t.dtype
    x = x_t.float() if out_dtype in HALF_DTYPES else x_t
    s2 = sigma.to(x.dtype).square()[:, None]
    z = x @ p.W
    y, w = torch.empty_like(z), z.new_empty(z.shape[0], p.lam.shape[0])
    for start in range(0, z.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        y[rows], w[rows] = posterior_coordinates(z[rows], s2[rows], p)
    x_hat = y @ p.W.T
    return x_hat.to(out_dtype), y.to(out_dtype), w.to(out_dtype)
