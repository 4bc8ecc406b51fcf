"""Speed of the batched projection denoiser against the machine's own ceilings.

Prints one table; asserts nothing. Ceilings are measured in the same run: a large float32
matmul (FLOP/s) and a large copy (GB/s). For each shape (orthogonal MoLRG, K classes of rank d
in n dimensions, B rows, sigma random per row):

* FLOPs  = 4 B n m (the two products with W, m = K d) + 10 B K m (the per-row class step);
* bytes  = 4 (2 B n + n m + B): read x_t and W, write x_hat, read sigma (float32);
* the bound is the larger of FLOPs / matmul rate and bytes / copy rate, and "of bound" is that
  ideal time over the measured one.

On CPU it times the torch reference and, at B = 4096, a straightforward implementation (a
Python loop over classes with dense n x n projectors and inverse covariances). With --device
cuda it also times the fused Triton kernel (IEEE and TF32) and reports its speed-up over the
torch reference (cuBLAS GEMMs + elementwise) at the same shape.

    python benchmarks/bench_projection_denoiser.py                  # CPU, the full grid
    python benchmarks/bench_projection_denoiser.py --device cuda    # GPU box
    python benchmarks/bench_projection_denoiser.py --quick          # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lowrank import MixtureDenoiser, MoLRG
from lowrank.kernels import triton_available


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


def ceilings(device: torch.device) -> tuple[float, float]:
    """Measured float32 matmul rate (FLOP/s, best of three square sizes) and copy bandwidth
    (B/s) of this device."""
    flops = 0.0
    for size in (2048, 4096, 8192) if device.type == "cuda" else (1024, 2048, 4096):
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
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
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    Bs = [4096] if args.quick else [4096, 16384, 65536]
    ns = args.n or ([784] if args.quick else [784, 3072])
    ds = args.d or ([5] if args.quick else [5, 20, 64])
    K = 10
    peak_flops, peak_bw = ceilings(device)
    print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"ceilings: float32 matmul {peak_flops / 1e9:.1f} GFLOP/s, "
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
                x_t = torch.randn(B, n, device=device)
                sigma = torch.exp(torch.randn(B, device=device))
                flops = 4 * B * n * m + 10 * B * K * m
                nbytes = 4 * (2 * B * n + n * m + B)
                bound = max(flops / peak_flops, nbytes / peak_bw)
                rows = []
                ref = MixtureDenoiser(mix, backend="torch")
                t_ref = timed(lambda: ref(x_t, sigma), device, args.repeats)  # noqa: B023
                rows.append(("torch reference", t_ref, None))
                if use_kernel:
                    for precision in ("ieee", "tf32"):
                        fused = MixtureDenoiser(mix, backend="triton", float32_precision=precision)
                        try:
                            t = timed(lambda: fused(x_t, sigma), device, args.repeats)  # noqa: B023
                            rows.append((f"triton fused ({precision})", t, t_ref / t))
                        except ValueError as err:  # outside what the kernel supports
                            rows.append((f"triton: {str(err).split(': ')[-1][:30]}", None, None))
                if device.type == "cpu" and B == Bs[0]:
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
    print("speed-up: straightforward time / reference time (CPU rows), or torch reference time /")
    print("fused time (CUDA rows); the straightforward cost does not depend on d.")


if __name__ == "__main__":
    main()
