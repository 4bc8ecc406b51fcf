"""The batched projection denoiser: a torch reference, a fused Triton kernel, and the dispatch.

``backend="auto"`` takes the kernel when the inputs are on CUDA, Triton imports, and the kernel
supports the dtype and mixture (:func:`triton_projection.supported`); otherwise the reference.
``backend="triton"`` insists (and says why it cannot run); ``backend="torch"`` never uses it.
"""

from __future__ import annotations

import functools

import torch

from .reference import FLOAT32_PRECISIONS, Posterior, ProjectionParams, projection_denoise

__all__ = [
    "BACKENDS",
    "check_options",
    "dispatch",
    "triton_available",
]

BACKENDS = ("auto", "torch", "triton")


def check_options(backend: str, float32_precision: str) -> None:
    """Clear errors for a backend or float32 precision the dispatch does not know."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if float32_precision not in FLOAT32_PRECISIONS:
        raise ValueError(
            f"float32_precision must be one of {FLOAT32_PRECISIONS}, got {float32_precision!r}"
        )


@functools.cache
def triton_available() -> bool:
    """Whether the Triton kernel module imports (Triton installed and usable)."""
    try:
        from . import triton_projection  # noqa: F401  (optional: Triton may be missing)
    except Exception:  # ImportError, or a Triton that fails on this platform
        return False
    return True


def dispatch(
    x_t: torch.Tensor,
    sigma: torch.Tensor,
    p: ProjectionParams,
    backend: str = "auto",
    float32_precision: str = "ieee",
) -> Posterior:
    """The posterior (``x_hat``, coordinates ``h``, weights ``w``) from the chosen backend; see
    the module docstring."""
    check_options(backend, float32_precision)
    if backend == "torch":
        return projection_denoise(x_t, sigma, p)
    if backend == "auto" and (not x_t.is_cuda or not triton_available()):
        return projection_denoise(x_t, sigma, p)
    if not triton_available():
        raise RuntimeError("backend='triton' needs the triton package (pip install triton)")
    from . import triton_projection  # optional: triton_available() checked it imports

    if backend == "auto" and triton_projection.supported(x_t, p) is not None:
        return projection_denoise(x_t, sigma, p)
    return triton_projection.projection_denoise_triton(x_t, sigma, p, float32_precision)
