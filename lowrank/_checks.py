"""Argument checks shared by the package: clear errors for the mistakes users actually make."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def as_sigmas(
    sigmas: Sequence[float] | torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A 1-D tensor of noise levels, all finite and > 0.

    A tensor keeps its dtype unless ``dtype`` is given; a sequence becomes float64.
    """
    if isinstance(sigmas, torch.Tensor):
        out = sigmas.to(dtype) if dtype is not None else sigmas
    else:
        out = torch.as_tensor(list(sigmas), dtype=dtype or torch.float64)
    if out.ndim != 1 or out.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(out.shape)}")
    check_positive_sigma(out)
    return out


def check_positive_sigma(sigma: torch.Tensor) -> None:
    if not torch.is_floating_point(sigma):
        raise TypeError(f"sigma must be floating point, got {sigma.dtype}")
    if not bool(torch.all(torch.isfinite(sigma))) or bool(torch.any(sigma <= 0)):
        raise ValueError("sigma must be finite and > 0 (the posterior mean at sigma = 0 is x_t)")


def row_sigma(sigma: float | torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    """Noise levels as a ``(B, 1)`` column on ``x_t``'s device and dtype.

    Arguments:
        sigma: a float, a 0-d tensor, or a ``(B,)`` tensor (one noise level per row).
        x_t: ``(B, n)`` noisy inputs.
    """
    s = torch.as_tensor(sigma, dtype=x_t.dtype, device=x_t.device)
    if s.ndim == 0:
        s = s.expand(x_t.shape[0])
    if s.shape != (x_t.shape[0],):
        raise ValueError(
            f"sigma must be a float or a ({x_t.shape[0]},) tensor, got shape {tuple(s.shape)}"
        )
    check_positive_sigma(s)
    return s[:, None]


def check_batch(x_t: torch.Tensor, n: int, name: str = "x_t") -> None:
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x_t).__name__}")
    if x_t.ndim != 2 or x_t.shape[1] != n:
        raise ValueError(f"{name} must have shape (B, {n}), got {tuple(x_t.shape)}")
    if not torch.is_floating_point(x_t):
        raise TypeError(f"{name} must be floating point, got {x_t.dtype}")


def orthonormality_tolerance(dtype: torch.dtype) -> float:
    # float32 QR leaves |V^T V - I| around 1e-6; 200 eps accepts that and rejects real mistakes.
    return max(1e-8, 200 * torch.finfo(dtype).eps)


def check_orthonormal(V: torch.Tensor, name: str = "basis") -> torch.Tensor:
    """Return ``V`` in float64 after checking its columns are orthonormal (``V^T V = I``).

    Inputs within rounding of orthonormal are re-orthonormalized in float64 (QR, signs kept)
    so that the closed forms built on them hold to float64 precision.
    """
    if not isinstance(V, torch.Tensor):
        V = torch.as_tensor(V)
    if V.ndim != 2 or V.shape[1] == 0 or V.shape[1] > V.shape[0]:
        raise ValueError(f"{name} must have shape (n, d) with 1 <= d <= n, got {tuple(V.shape)}")
    if not torch.is_floating_point(V):
        raise TypeError(f"{name} must be floating point, got {V.dtype}")
    V64 = V.detach().to(torch.float64, copy=True)
    gram = V64.T @ V64
    err = (gram - torch.eye(V.shape[1], dtype=torch.float64)).abs().max().item()
    if err > orthonormality_tolerance(V.dtype):
        raise ValueError(
            f"{name} must have orthonormal columns: max |V^T V - I| = {err:.2e} "
            f"(tolerance {orthonormality_tolerance(V.dtype):.1e}); orthonormalize it first, "
            "e.g. with torch.linalg.qr"
        )
    return orthonormalize(V64)


def orthonormalize(M: torch.Tensor) -> torch.Tensor:
    """QR-based orthonormal basis of the columns of a full-rank ``M``, with signs kept
    (``diag(R) > 0``), so that an already orthonormal ``M`` comes back unchanged."""
    Q, R = torch.linalg.qr(M)
    signs = torch.sign(torch.diagonal(R))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return Q * signs
