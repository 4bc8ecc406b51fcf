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

from .reference import FLOAT32_PRECISIONS, HALF_DTYPES, Posterior, ProjectionParams

__all__ = [
    "MAX_M",
    "KernelLaunch",
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


# What benchmarks/kernel_configs.py picks by the rules of launch_config; rerun it when the kernel
# or Triton changes (it exits 1 when this table is not its pick).
_TILES = {  # M_PAD: {input type: (BLOCK_B, BLOCK_N, num_warps)}
    16: {"fp32 ieee": (64, 32, 8), "fp32 tf32": (64, 64, 4), "half": (64, 64, 4)},
    32: {"fp32 ieee": (64, 32, 8), "fp32 tf32": (64, 64, 4), "half": (64, 32, 8)},
    64: {"fp32 ieee": (64, 32, 8), "fp32 tf32": (64, 64, 4), "half": (64, 64, 4)},
    128: {"fp32 ieee": (32, 32, 8), "fp32 tf32": (32, 32, 8), "half": (32, 64, 4)},
    256: {"fp32 ieee": (32, 32, 8), "fp32 tf32": (32, 32, 8), "half": (32, 32, 8)},
}


def launch_config(M: int, dtype: torch.dtype, float32_precision: str = "ieee") -> LaunchConfig:
    """The launcher's tiles for union dimension ``M`` and the input type, and why.

    ``M_PAD`` is the power of two >= 16 that ``tl.dot`` needs. The tiles are chosen without a
    GPU to time them: ``benchmarks/kernel_configs.py`` compiles ``BLOCK_B`` in 16, 32, 64 with
    32-wide slices and 8 warps or 64-wide slices and 4 warps, for sm_80 and sm_90, and ranks
    them by these rules, in order:

    1. no register spill and shared memory within the limit, on both targets;
    2. more rows in flight per SM (resident programs x ``BLOCK_B``, the smaller of the two
       targets): the kernel streams ``x_t`` from memory once, and this is how much of the
       stream an SM overlaps;
    3. more rows per program: each program reads all of ``W`` twice (from L2), ``2 m /
       BLOCK_B`` elements of ``W`` per element of ``x_t``;
    4. more resident warps per SM (the smaller of the two targets), to hide latency;
    5. fewer registers.

    The result (``_TILES``): 64-row programs up to ``M_PAD = 64``, which on sm_90 multiply with
    ``wgmma`` in TF32 and half precision; 32 rows at 128 and 256, where 64 rows spill or keep
    fewer rows in flight. Timing on a GPU (``benchmarks/gpu_check.sh``) has the last word.
    """
    M_PAD = max(16, triton.next_power_of_2(M))
    kind = f"fp32 {float32_precision}" if dtype == torch.float32 else "half"
    BLOCK_B, BLOCK_N, num_warps = _TILES[M_PAD][kind]
    return LaunchConfig(BLOCK_B, BLOCK_N, M_PAD, num_warps, num_stages=3)


@dataclass(frozen=True)
class KernelLaunch:
    """One launch of the kernel: ``kernel[grid](*args, **kwargs)`` writes ``outputs`` (its
    ``coordinates`` and ``weights`` in float32)."""

    grid: tuple[int]
    args: tuple
    kwargs: dict
    outputs: Posterior


def kernel_launch(
    x_t: torch.Tensor,
    sigma: torch.Tensor,
    p: ProjectionParams,
    float32_precision: str,
    config: LaunchConfig | None = None,
) -> KernelLaunch:
    """The kernel launch for these inputs, so that the ahead-of-time compile check
    (:mod:`tools.compile_report`) compiles exactly what :func:`projection_denoise_triton`
    launches. ``config`` replaces :func:`launch_config`'s choice (to compile candidates)."""
    x_t = x_t.contiguous()  # the output shares its strides
    B, N = x_t.shape
    K, M = p.lam.shape
    config = config or launch_config(M, x_t.dtype, float32_precision)
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
    outputs = Posterior(x_hat=out, coordinates=h, weights=w)
    return KernelLaunch((triton.cdiv(B, config.BLOCK_B),), args, kwargs, outputs)


def projection_denoise_triton(
    x_t: torch.Tensor,
    sigma: torch.Tensor,
    p: ProjectionParams,
    float32_precision: str = "ieee",
) -> Posterior:
    """The fused posterior: mean, features (coordinates) and weights, ``(B, n)``, ``(B, m)``,
    ``(B, K)``.

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
    launch = kernel_launch(x_t, sigma, p, float32_precision)
    _projection_denoiser_kernel[launch.grid](*launch.args, **launch.kwargs)
    out = launch.outputs
    return Posterior(
        x_hat=out.x_hat,
        coordinates=out.coordinates.to(x_t.dtype),
        weights=out.weights.to(x_t.dtype),
    )
