r"""Fused Triton kernel of the batched projection denoiser (mixtures diagonal in ``W``).

One launch per call; each program owns ``BLOCK_B`` rows and does all three stages of
:mod:`lowrank.kernels.reference` without writing intermediates to memory:

1. ``z = x_t W``, accumulated in float32 over ``BLOCK_N``-wide slices of ``n``;
2. two passes over the ``K`` classes on the ``(BLOCK_B, M_PAD)`` tile held in registers: the
   first finds the log-sum-exp of the class logits, the second forms the weights ``w`` and the
   shrunk coordinates ``y = sum_k w_k (mu_k + (lambda_k / (lambda_k + sigma^2)) (z - mu_k))``;
3. ``x_hat = y W^T``, written slice by slice.

So ``x_t`` is read once and ``x_hat`` written once; ``W`` is read twice per program (from L2).
Only mixtures whose class covariances are diagonal in ``W``'s coordinates are supported (the
MoLRG family but for overlapping subspaces): the general case needs ``K`` dense ``m x m`` frames
and stays on the torch reference.

``tl.dot`` needs every block dimension >= 16 on a GPU, so ``m`` is padded to ``M_PAD`` (a power
of two >= 16) with zero variance and zero mean, which adds nothing to the logits or to ``y``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .reference import FLOAT32_PRECISIONS, HALF_DTYPES, ProjectionParams

__all__ = [
    "MAX_M",
    "LaunchConfig",
    "kernel_launch",
    "launch_config",
    "projection_denoise_triton",
    "supported",
]

# Widest union dimension the kernel takes: two (BLOCK_B, M_PAD) float32 tiles live in
# registers, which for M_PAD = 256 and BLOCK_B = 16 is already 32 KB per program.
MAX_M = 256


@triton.jit
def _log1p(t):
    # Accurate log(1 + t) for small t from log alone (Goldberg): the rounding of 1 + t cancels.
    u = 1.0 + t
    exact = u == 1.0
    return tl.where(exact, t, tl.log(u) * t / tl.where(exact, 1.0, u - 1.0))


@triton.jit
def _class_terms(z, s2, lam_ptr, mean_ptr, log_pi_ptr, k, M, cm, m_ok):
    lam = tl.load(lam_ptr + k * M + cm, mask=m_ok, other=0.0)
    mu = tl.load(mean_ptr + k * M + cm, mask=m_ok, other=0.0)
    u = z - mu[None, :]
    var = lam[None, :] + s2[:, None]
    logit = tl.load(log_pi_ptr + k) - 0.5 * tl.sum(
        u * u / var + _log1p(lam[None, :] / s2[:, None]), axis=1
    )
    return logit, mu, u, lam, var


@triton.jit
def _projection_denoiser_kernel(
    x_ptr,
    sigma_ptr,
    W_ptr,
    lam_ptr,
    mean_ptr,
    log_pi_ptr,
    out_ptr,
    h_ptr,
    w_ptr,
    B,
    N,
    M,
    K,
    stride_xb,
    stride_xn,
    stride_wn,
    stride_wm,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    M_PAD: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    # int64: row offsets rows * stride_xb reach B * n, past 2^31 for batches an H200 holds
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    row_ok = rows < B
    cm = tl.arange(0, M_PAD)
    m_ok = cm < M

    # stage 1: z = x_t W
    z = tl.zeros((BLOCK_B, M_PAD), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cn = n0 + tl.arange(0, BLOCK_N)
        n_ok = cn < N
        x = tl.load(
            x_ptr + rows[:, None] * stride_xb + cn[None, :] * stride_xn,
            mask=row_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        w_tile = tl.load(
            W_ptr + cn[:, None] * stride_wn + cm[None, :] * stride_wm,
            mask=n_ok[:, None] & m_ok[None, :],
            other=0.0,
        )
        z = tl.dot(x, w_tile, acc=z, input_precision=INPUT_PRECISION)

    sigma = tl.load(sigma_ptr + rows, mask=row_ok, other=1.0)
    s2 = sigma * sigma

    # stage 2a: log-sum-exp of the class logits, online over k
    run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for k in range(K):
        logit, _, _, _, _ = _class_terms(z, s2, lam_ptr, mean_ptr, log_pi_ptr, k, M, cm, m_ok)
        new_max = tl.maximum(run_max, logit)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.exp(logit - new_max)
        run_max = new_max

    # stage 2b: weights and shrunk coordinates
    y = tl.zeros((BLOCK_B, M_PAD), dtype=tl.float32)
    for k in range(K):
        logit, mu, u, lam, var = _class_terms(z, s2, lam_ptr, mean_ptr, log_pi_ptr, k, M, cm, m_ok)
        w_k = tl.exp(logit - run_max) / run_sum
        tl.store(w_ptr + rows * K + k, w_k, mask=row_ok)
        y += w_k[:, None] * (mu[None, :] + u * (lam[None, :] / var))
    tl.store(h_ptr + rows[:, None] * M + cm[None, :], y, mask=row_ok[:, None] & m_ok[None, :])

    # stage 3: x_hat = y W^T
    y_in = y.to(x_ptr.dtype.element_ty)
    for n0 in range(0, N, BLOCK_N):
        cn = n0 + tl.arange(0, BLOCK_N)
        n_ok = cn < N
        w_t = tl.load(
            W_ptr + cm[:, None] * stride_wm + cn[None, :] * stride_wn,
            mask=m_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        x_hat = tl.dot(y_in, w_t, input_precision=INPUT_PRECISION)
        tl.store(
            out_ptr + rows[:, None] * stride_xb + cn[None, :] * stride_xn,
            x_hat.to(out_ptr.dtype.element_ty),
            mask=row_ok[:, None] & n_ok[None, :],
        )


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def supported(x_t: torch.Tensor, p: ProjectionParams) -> str | None:
    """``None`` when the kernel can run on these inputs, else the reason it cannot."""
    if p.Q is not None:
        return "the mixture is not diagonal in W's coordinates (overlapping classes)"
    if x_t.dtype not in (torch.float32, *HALF_DTYPES):
        return f"dtype {x_t.dtype} (the kernel takes float32, float16, bfloat16)"
    if p.W.shape[1] > MAX_M:
        return f"union dimension m = {p.W.shape[1]} > {MAX_M} (register budget)"
    if not x_t.is_cuda and not _interpreting():
        return "CPU tensors need TRITON_INTERPRET=1 (the interpreter; for tests)"
    return None


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and schedule of one launch (the kernel's constexprs and compile options)."""

    BLOCK_B: int
    BLOCK_N: int
    M_PAD: int
    num_warps: int
    num_stages: int


def launch_config(M: int) -> LaunchConfig:
    """The launcher's choice for union dimension ``M``, in one place.

    ``M_PAD`` is the power of two >= 16 that ``tl.dot`` needs. Up to ``M_PAD = 64`` a program
    takes 32 rows with 4 warps; wider, 16 rows with 8 warps, so that the two ``(BLOCK_B, M_PAD)``
    float32 tiles of stage 2 stay within 255 registers per thread (``python -m
    lowrank.kernels.compile_report`` prints what ptxas makes of it for sm_80 and sm_90).
    """
    M_PAD = max(16, triton.next_power_of_2(M))
    if M_PAD <= 64:
        return LaunchConfig(BLOCK_B=32, BLOCK_N=64, M_PAD=M_PAD, num_warps=4, num_stages=3)
    return LaunchConfig(BLOCK_B=16, BLOCK_N=32, M_PAD=M_PAD, num_warps=8, num_stages=3)


def kernel_launch(
    x_t: torch.Tensor, sigma: torch.Tensor, p: ProjectionParams, float32_precision: str
) -> tuple[tuple[int], tuple, dict, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(grid, args, kwargs, (out, h, w))`` of the kernel launch for these inputs, so that the
    ahead-of-time compile check (:mod:`lowrank.kernels.compile_report`) compiles exactly what
    :func:`projection_denoise_triton` launches. ``h`` and ``w`` are float32."""
    x_t = x_t.contiguous()  # the output shares its strides
    B, N = x_t.shape
    K, M = p.lam.shape
    config = launch_config(M)
    W = p.W.to(x_t.dtype).contiguous()
    f32 = {"device": x_t.device, "dtype": torch.float32}
    lam, mean = p.lam.to(**f32).contiguous(), p.mean.to(**f32).contiguous()
    log_pi = p.log_pi.to(**f32).contiguous()
    out = torch.empty_like(x_t)
    h = torch.empty(B, M, **f32)
    w = torch.empty(B, K, **f32)
    precision = float32_precision if x_t.dtype == torch.float32 else None
    args = (
        x_t,
        sigma.to(**f32).contiguous(),
        W,
        lam,
        mean,
        log_pi,
        out,
        h,
        w,
        B,
        N,
        M,
        K,
        x_t.stride(0),
        x_t.stride(1),
        W.stride(0),
        W.stride(1),
    )
    kwargs = {
        "BLOCK_B": config.BLOCK_B,
        "BLOCK_N": config.BLOCK_N,
        "M_PAD": config.M_PAD,
        "INPUT_PRECISION": precision,
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
    }
    return (triton.cdiv(B, config.BLOCK_B),), args, kwargs, (out, h, w)


def projection_denoise_triton(
    x_t: torch.Tensor,
    sigma: torch.Tensor,
    p: ProjectionParams,
    float32_precision: str = "ieee",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused posterior mean, features and weights: ``(B, n)``, ``(B, m)``, ``(B, K)``.

    Arguments:
        x_t: ``(B, n)`` noisy inputs (float32, float16 or bfloat16; CUDA, or CPU under
            ``TRITON_INTERPRET=1``).
        sigma: ``(B,)`` noise levels > 0.
        p: float32 mixture tensors on ``x_t``'s device, ``p.Q`` None.
        float32_precision: ``"ieee"`` or ``"tf32"`` for float32 inputs (ignored for half).
    """
    reason = supported(x_t, p)
    if reason is not None:
        raise ValueError(f"the Triton kernel cannot run here: {reason}")
    if float32_precision not in FLOAT32_PRECISIONS:
        raise ValueError(f"float32_precision must be one of {FLOAT32_PRECISIONS}")
    grid, args, kwargs, (out, h, w) = kernel_launch(x_t, sigma, p, float32_precision)
    _projection_denoiser_kernel[grid](*args, **kwargs)
    return out, h.to(x_t.dtype), w.to(x_t.dtype)
