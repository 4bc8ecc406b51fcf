"""Speed of the batched projection denoiser against the machine's own ceilings.

Prints one table; asserts nothing. Ceilings are measured in the same run: a large matmul in the
input dtype (FLOP/s) and a large copy (GB/s). For each shape (orthogonal MoLRG, K classes of
rank d in n dimensions, B rows, sigma random per row), with s bytes per element of x_t:

* FLOPs  = 4 B n m (the two products with W, m = K d) + 10 B K m (the per-row class step);
* bytes  = s (2 B n + n m) + 4 B: read x_t and W, write x_hat, read sigma (float32);
* the bound is the larger of FLOPs / matmul rate and bytes / copy rate, and "of bound" is that
  ideal time over the measured one.

On CPU it times the torch reference and, at B = 4096, a straightforward implementation (a
Python loop over classes with dense n x n projectors and inverse covariances). With --device
cuda it also times the fused Triton kernel and reports its speed-up over the fastest
torch-composed version of the same precision (cuBLAS GEMMs + elementwise stage 2): for float32,
the reference with IEEE products (kernel IEEE) or either of IEEE and TF32 (kernel TF32); for
--dtype float16 or bfloat16, the reference (which computes in float32) or the same steps with
the two GEMMs in the input dtype.

    python benchmarks/bench_projection_denoiser.py                  # CPU, the full grid
    python benchmarks/bench_projection_denoiser.py --device cuda    # GPU box
    python benchmarks/bench_projection_denoiser.py --quick          # a smoke run
    python benchmarks/bench_projection_denoiser.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.kernels import triton_available
from lowrank.theory.kernels.reference import coordinates_posterior
from lowrank.theory.mixtures import MoLRG


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ceilings(device: torch.device, dtype: torch.dtype) -> tuple[float, float]:
    """Measured matmul rate in ``dtype`` (FLOP/s, best of three square sizes) and copy
    bandwidth (B/s) of this device."""
    flops = 0.0
    for size in (2048, 4096, 8192) if device.type == "cuda" else (1024, 2048, 4096):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        flops = max(flops, 2 * size**3 / timed(lambda: a @ b, device, 3))  # noqa: B023
    src = torch.empty(64 * 2**20, device=device)  # 256 MB
    dst = torch.empty_like(src)
    bandwidth = 2 * src.numel() * 4 / timed(lambda: dst.copy_(src), device, 5)
    return flops, bandwidth


def straightforward(mix: MoLRG, x_t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Dense reference a newcomer would write: per class, an n x n projector and an n x n
    inverse covariance (one sigma for the whole batch, built outside the timed region)."""
    out, logits = [], []
    for k, (P, C_inv, logdet) in enumerate(straightforward.cache):
        r = x_t - mix.means[k].to(x_t)
        logits.append(mix.pi[k].log().item() - 0.5 * ((r @ C_inv) * r).sum(1) - 0.5 * logdet)
        out.append(mix.means[k].to(x_t) + r @ P)
    w = torch.softmax(torch.stack(logits, 1), 1)
    return torch.einsum("bk,kbn->bn", w, torch.stack(out))


def composed_in_dtype(den: MixtureDenoiser, x_t: torch.Tensor, sigma: torch.Tensor):
    """The reference's three steps with both GEMMs in ``x_t``'s (half) dtype, stage 2 in
    float32: the fastest way to compose the denoiser from torch operations in half precision.
    Less accurate than the kernel (about twice its bfloat16 reference's error on CPU): cuBLAS
    rounds ``z`` to the half dtype before stage 2, where the kernel keeps it in float32."""
    params = den._params(x_t.float())
    W = params.W.to(x_t.dtype)
    stage_2 = coordinates_posterior((x_t @ W).float(), sigma.float().square()[:, None], params)
    y = stage_2.coordinates
    return y.to(x_t.dtype) @ W.T


def build_dense(mix: MoLRG, sigma: float, device, dtype):
    cache = []
    eye = torch.eye(mix.n, dtype=torch.float64)
    for k in range(mix.K):
        S = mix.covariance(k)
        C = S + sigma**2 * eye
        P = S @ torch.linalg.inv(C)
        cache.append(
            (
                P.T.to(device, dtype),
                torch.linalg.inv(C).to(device, dtype),
                torch.linalg.slogdet(C).logabsdet.item(),
            )
        )
    straightforward.cache = cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, nargs="+", help="ambient dimensions (784 3072)")
    parser.add_argument("--d", type=int, nargs="+", help="class ranks (5 20 64)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    Bs = [4096] if args.quick else [4096, 16384, 65536]
    ns = args.n or ([784] if args.quick else [784, 3072])
    ds = args.d or ([5] if args.quick else [5, 20, 64])
    K = 10
    peak_flops, peak_bw = ceilings(device, dtype)
    print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"ceilings: {args.dtype} matmul {peak_flops / 1e9:.1f} GFLOP/s, "
          f"copy {peak_bw / 1e9:.1f} GB/s")  # fmt: skip
    header = (
        f"{'n':>5} {'d':>3} {'m':>4} {'B':>6} | {'impl':<22} {'ms':>9} {'GFLOP/s':>8} "
        f"{'%matmul':>7} {'GB/s':>7} {'of bound':>8} | {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    use_kernel = device.type == "cuda" and triton_available()
    for n in ns:
        for d in ds:
            mix = MoLRG(n=n, K=K, d=d, delta=0.2, seed=0)
            m = mix.m
            for B in Bs:
                x_t = torch.randn(B, n, device=device, dtype=dtype)
                sigma = torch.exp(torch.randn(B, device=device))
                flops = 4 * B * n * m + 10 * B * K * m
                nbytes = x_t.element_size() * (2 * B * n + n * m) + 4 * B
                bound = max(flops / peak_flops, nbytes / peak_bw)
                rows = []
                ref = MixtureDenoiser(mix, backend="torch")
                t_ref = timed(lambda: ref(x_t, sigma), device, args.repeats)  # noqa: B023
                rows.append(("torch reference", t_ref, None))
                best = {"ieee": t_ref, "tf32": t_ref}  # fastest torch time a kernel mode must beat
                if device.type == "cuda" and dtype == torch.float32:
                    torch.backends.cuda.matmul.allow_tf32 = True
                    try:
                        t = timed(lambda: ref(x_t, sigma), device, args.repeats)  # noqa: B023
                    finally:
                        torch.backends.cuda.matmul.allow_tf32 = False
                    rows.append(("torch reference (tf32)", t, None))
                    best["tf32"] = min(t_ref, t)
                elif dtype != torch.float32:
                    t = timed(lambda: composed_in_dtype(ref, x_t, sigma), device, args.repeats)  # noqa: B023
                    rows.append((f"torch, {args.dtype} GEMMs", t, None))
                    best["ieee"] = min(t_ref, t)
                if use_kernel:
                    for precision in ("ieee", "tf32") if dtype == torch.float32 else ("ieee",):
                        fused = MixtureDenoiser(mix, backend="triton", float32_precision=precision)
                        name = (
                            f"triton fused ({precision if dtype == torch.float32 else args.dtype})"
                        )
                        try:
                            t = timed(lambda: fused(x_t, sigma), device, args.repeats)  # noqa: B023
                            rows.append((name, t, best[precision] / t))
                        except ValueError as err:  # outside what the kernel supports
                            rows.append((f"triton: {str(err).split(': ')[-1][:30]}", None, None))
                if device.type == "cpu" and B == Bs[0] and dtype == torch.float32:
                    build_dense(mix, 1.0, device, torch.float32)
                    t = timed(lambda: straightforward(mix, x_t, 1.0), device, 1)  # noqa: B023
                    rows.append(("straightforward (dense)", t, None))
                    rows[0] = ("torch reference", t_ref, t / t_ref)
                for name, t, speedup in rows:
                    if t is None or name.startswith("straightforward"):
                        ms = f"{t * 1e3:>9.2f}" if t else ""
                        print(f"{n:>5} {d:>3} {m:>4} {B:>6} | {name:<22} {ms}")
                        continue
                    print(
                        f"{n:>5} {d:>3} {m:>4} {B:>6} | {name:<22} {t * 1e3:>9.2f} "
                        f"{flops / t / 1e9:>8.1f} {100 * flops / t / peak_flops:>6.0f}% "
                        f"{nbytes / t / 1e9:>7.1f} {100 * bound / t:>7.0f}% | "
                        + (f"{speedup:>7.1f}x" if speedup else "")
                    )
    print("speed-up: straightforward time / reference time (CPU rows), or the fastest torch time")
    print("of the same precision / fused time (CUDA rows); the straightforward cost does not")
    print("depend on d.")


if __name__ == "__main__":
    main()
