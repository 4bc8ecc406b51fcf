"""Argument checks shared by the package: clear errors for the mistakes users actually make."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch


def as_sigmas(
    sigmas: Sequence[float] | torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A 1-D tensor of noise levels, all finite and > 0 (one number is one level).

    A float32 or float64 tensor keeps its dtype unless ``dtype`` is given, a half-precision one
    becomes float32 (see :func:`compute_dtype`); a sequence becomes float64.
    """
    if isinstance(sigmas, torch.Tensor):
        if not torch.is_floating_point(sigmas):
            raise TypeError(f"sigmas must be floating point, got {sigmas.dtype}")
        out = sigmas.to(dtype or compute_dtype(sigmas.dtype))
    elif isinstance(sigmas, numbers.Real) and not isinstance(sigmas, bool):
        out = torch.tensor([float(sigmas)], dtype=dtype or torch.float64)  # one level
    else:
        try:
            out = torch.as_tensor(list(sigmas), dtype=dtype or torch.float64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"sigmas must be numbers or a 1-D tensor, got {sigmas!r}") from e
    if out.ndim != 1 or out.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(out.shape)}")
    check_positive_sigma(out)
    return out


def sigma_range(dtype: torch.dtype) -> tuple[float, float]:
    """Noise levels the package computes with in ``dtype``: ``sigma^2`` between the square
    roots of the smallest normal and the largest finite number.

    The closed forms divide by ``sigma^2`` and add ``sigma^2`` to variances of order one, so
    both ``sigma^2`` and ``1 / sigma^2`` must stay far from under- and overflow, with room for
    the data's scale (float32: about [3.3e-10, 4.3e9]; float64: [1.2e-77, 1.2e77]).
    """
    info = torch.finfo(dtype)
    return info.tiny**0.25, info.max**0.25


def check_positive_sigma(sigma: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """Check that every noise level is finite, > 0 and inside :func:`sigma_range` of ``dtype``
    (default: ``sigma``'s own), the dtype it will be computed in."""
    if not torch.is_floating_point(sigma):
        raise TypeError(f"sigma must be floating point, got {sigma.dtype}")
    dtype = dtype or sigma.dtype
    low, high = sigma_range(dtype)
    if bool(torch.all((sigma >= low) & (sigma <= high))):  # one host sync; NaN fails it too
        return
    if not bool(torch.all(torch.isfinite(sigma))) or bool(torch.any(sigma <= 0)):
        raise ValueError("sigma must be finite and > 0 (the posterior mean at sigma = 0 is x_t)")
    wider = ""
    if dtype != torch.float64:
        wider = "; float64 inputs allow [{:.2g}, {:.2g}]".format(*sigma_range(torch.float64))
    raise ValueError(
        f"sigma must lie in [{low:.2g}, {high:.2g}] in {dtype} (sigma^2 and 1/sigma^2 "
        f"must not under- or overflow), got values from {sigma.min().item():.3g} to "
        f"{sigma.max().item():.3g}{wider}"
    )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype noise levels are kept in for inputs of ``dtype``: float64 for float64 inputs,
    else float32 (half precision would round sigma, e.g. 0.3 to 0.30078 in bfloat16, and
    flush small sigma to zero; the kernels compute the class step in float32 anyway)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def row_sigma(sigma: float | torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    """Noise levels as a ``(B, 1)`` column on ``x_t``'s device, in float64 for float64 inputs
    and float32 otherwise (see :func:`compute_dtype`).

    Arguments:
        sigma: a float, a 0-d tensor, or a ``(B,)`` tensor (one noise level per row).
        x_t: ``(B, n)`` noisy inputs.
    """
    if isinstance(sigma, torch.Tensor):
        if not torch.is_floating_point(sigma):
            raise TypeError(f"sigma must be floating point, got {sigma.dtype}")
    elif isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(
            f"sigma must be a float or a tensor, got {sigma!r} ({type(sigma).__name__}): "
            "pass a number, e.g. 0.5"
        )
    # checked in float64 before the cast: 1e-50 must be reported as out of float32's range,
    # not as the zero it would round to
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x_t.device)
    if s.ndim == 0:
        s = s.expand(x_t.shape[0])
    if s.shape != (x_t.shape[0],):
        raise ValueError(
            f"sigma must be a float or a ({x_t.shape[0]},) tensor, got shape {tuple(s.shape)}"
        )
    dtype = compute_dtype(x_t.dtype)
    check_positive_sigma(s, dtype)
    return s.to(dtype)[:, None]


def check_batch(x_t: torch.Tensor, n: int, name: str = "x_t") -> None:
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x_t).__name__}")
    if x_t.ndim != 2 or x_t.shape[1] != n:
        raise ValueError(f"{name} must have shape (B, {n}), got {tuple(x_t.shape)}")
    if not torch.is_floating_point(x_t):
        raise TypeError(f"{name} must be floating point, got {x_t.dtype}")
    if x_t.device.type == "cpu":
        check_magnitude(x_t, name)


def check_magnitude(x: torch.Tensor, name: str) -> None:
    """Check that ``x`` is finite and small enough that squared norms stay finite in the dtype
    it is computed in (:func:`compute_dtype`): entries up to ``max ** 0.25`` (float32 about
    4.3e9, float64 about 1.2e77), the bound :func:`sigma_range` uses for ``sigma``.

    Past it the posterior's logits overflow to ``inf`` for every class and the softmax gives
    NaN everywhere. The denoisers check CPU inputs only: on CUDA the fused kernel reads ``x_t``
    once, and a second pass over it for this check would cost a third of its memory traffic.
    """
    high = sigma_range(compute_dtype(x.dtype))[1]
    if x.numel() == 0 or bool(torch.all(x.abs() <= high)):  # one host sync; NaN fails it too
        return
    if not bool(torch.all(torch.isfinite(x))):
        raise ValueError(f"{name} must be finite: it holds NaN or inf")
    raise ValueError(
        f"{name} has entries up to {x.abs().max().item():.3g}, past {high:.2g}, where squared "
        f"norms overflow in {compute_dtype(x.dtype)}: rescale the data"
    )


def check_count(value, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` after checking it is an integer ``>= minimum`` (a class count, a
    rank, a dimension: ``K = 2.5`` or ``d = 0`` would otherwise give numbers, or a crash far
    from the call)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(
    value, name: str, low: float | None = None, high: float | None = None, open_low=False
) -> float:
    """``value`` as a ``float`` after checking it is a finite real number (not a bool or a
    string) in ``[low, high]`` (``(low, high]`` with ``open_low``): a weight decay of NaN or a
    margin of -1 would otherwise give a number without an error."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if open_low else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {left}{low}, {high}], got {value}")
    return value


def check_open_unit(value, name: str) -> float:
    """``value`` as a ``float`` after checking it is a finite number in the open interval
    ``(0, 1)``: a confidence level, a power, a share."""
    value = check_real(value, name, 0.0, 1.0, open_low=True)
    if value >= 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value}")
    return value


def check_features(F, name: str, width: int | None = None) -> torch.Tensor:
    """``F`` as a ``(N, p)`` tensor of finite numbers, ``N >= 1`` (and ``p == width``)."""
    if not isinstance(F, torch.Tensor) or F.ndim != 2 or len(F) == 0:
        shape = tuple(F.shape) if isinstance(F, torch.Tensor) else type(F).__name__
        raise ValueError(f"{name} must be a non-empty (N, p) tensor, got {shape}")
    if width is not None and F.shape[1] != width:
        raise ValueError(f"{name} must be (M, {width}), got {tuple(F.shape)}")
    finite = torch.isfinite(F).all(1)
    if not bool(finite.all()):
        rows = (~finite).nonzero()[:, 0].tolist()
        raise ValueError(
            f"{name} has non-finite values (NaN or inf) in {len(rows)} row(s), first {rows[:5]}:"
            " drop those rows (and their labels) or recompute the features"
        )
    return F


def as_float64(values, name: str) -> torch.Tensor:
    """``values`` (a tensor, a number or a nested sequence) as a finite float64 tensor.

    A sequence goes straight to float64 (through ``torch.as_tensor`` without a dtype it would
    pass through float32 first: 0.1 would become 0.10000000149).
    """
    if isinstance(values, torch.Tensor):
        out = values.detach().to(torch.float64)
    else:
        try:
            out = torch.as_tensor(values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be numbers or a tensor, got {values!r}") from e
    if not bool(torch.all(torch.isfinite(out))):
        raise ValueError(f"{name} must be finite, got {out.tolist() if out.numel() < 20 else out}")
    return out


def check_labels(labels: torch.Tensor, name: str = "labels", K: int | None = None) -> int:
    """Check ``(N,)`` integer class labels in ``0 .. K-1`` and return ``K``.

    Without ``K``, it is ``max + 1`` and every class ``0 .. K-1`` must occur (a stray label such
    as 200 among 0..9 would otherwise add 190 empty classes).
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor of class indices")
    if torch.is_floating_point(labels) or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be integers, got {labels.dtype}")
    if labels.numel() == 0:
        raise ValueError(f"{name} is empty")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (K is not None and high >= K):
        bound = f"0 .. {K - 1}" if K is not None else "0 .. K-1"
        raise ValueError(f"{name} must lie in {bound}, got values from {low} to {high}")
    if K is None:
        K = high + 1
        missing = sorted(set(range(K)) - set(labels.unique().tolist()))
        if missing:
            raise ValueError(
                f"{name} must use every class 0 .. {K - 1}; classes {missing[:10]} never occur "
                "(relabel to consecutive integers from 0)"
            )
    return K


def orthonormality_tolerance(dtype: torch.dtype) -> float:
    # float32 QR leaves |V^T V - I| around 1e-6; 200 eps accepts that and rejects real mistakes.
    return max(1e-8, 200 * torch.finfo(dtype).eps)


def check_orthonormal(V: torch.Tensor, name: str = "basis") -> torch.Tensor:
    """Return ``V`` in float64 after checking its columns are orthonormal (``V^T V = I``).

    Inputs within rounding of orthonormal are re-orthonormalized in float64 (QR, signs kept)
    so that the closed forms built on them hold to float64 precision.
    """
    if not isinstance(V, torch.Tensor):
        V = as_float64(V, name)
    if V.ndim != 2 or V.shape[1] == 0 or V.shape[1] > V.shape[0]:
        raise ValueError(f"{name} must have shape (n, d) with 1 <= d <= n, got {tuple(V.shape)}")
    if not torch.is_floating_point(V):
        raise TypeError(f"{name} must be floating point, got {V.dtype}")
    V64 = V.detach().to(torch.float64, copy=True)
    if not bool(torch.all(torch.isfinite(V64))):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
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


def check_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a finite, non-empty ``(N, features)`` matrix (``(N, ...)`` flattened)."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", x)
        raise ValueError(f"{name} must be a non-empty (N, ...) tensor, got {shape}")
    if not bool(torch.all(torch.isfinite(x))):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return x.flatten(1)


def check_increasing(sigmas: torch.Tensor, name: str = "sigmas") -> torch.Tensor:
    """``sigmas`` (1-D) after checking it increases strictly: a curve's shape test reads its
    first level as the least noise and its last as the most, so a descending grid would turn a
    falling curve into a rising one."""
    if sigmas.numel() > 1 and not bool(torch.all(sigmas[1:] > sigmas[:-1])):
        raise ValueError(
            f"{name} must increase strictly (the first level is the least noise), got "
            f"{sigmas.tolist()}: sort the grid, and the features with it"
        )
    return sigmas


def labelled_pair(pair, name: str) -> tuple:
    """``(inputs, labels)`` of a labelled set passed as one argument (the functions it goes to
    check the two agree)."""
    try:
        inputs, labels = pair
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (inputs, labels), got {type(pair).__name__}"
        ) from None
    return inputs, labels
