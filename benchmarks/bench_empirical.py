"""Time and peak memory of the streaming memorizing denoiser against the dense formula.

Prints one table; asserts nothing. For N training points in n = 784 dimensions and B queries,
"dense" is ``softmax(-||x - x_i||^2 / 2 sigma^2) @ X`` with the whole ``(B, N)`` distance matrix
in memory; "streaming" is :class:`lowrank.EmpiricalDenoiser` (chunks of 4096, online
log-sum-exp). Each measurement runs in its own process; its peak memory is the rise of the
process's peak resident set, reset just before the call (CPU), or of torch's peak allocation
(CUDA), over what the data already take. The children run with a fixed glibc mmap threshold:
glibc otherwise raises it after each large free and keeps later chunks in the heap, which
grows the resident set with the number of chunks (measured: 12 -> 51 MB from N = 1000 to
60000) although the program holds no more memory. The data are uniform in [0, 1]^784.

    python benchmarks/bench_empirical.py                 # CPU, N up to 60000
    python benchmarks/bench_empirical.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from lowrank.theory.denoisers import EmpiricalDenoiser


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field))
    return int(line.split()[1]) * 1024


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(kind: str, N: int, B: int, device: str) -> dict:
    """One measurement in this process: seconds and peak extra bytes."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(N, 784, generator=g).to(device)
    x_t = (X[:B] + 0.5 * torch.randn(B, 784, generator=g).to(device)).contiguous()
    sigma = torch.full((B,), 0.5, device=device)
    den = EmpiricalDenoiser(X, chunk_size=4096)

    def run():
        if kind == "streaming":
            return den(x_t, sigma)
        logits = -torch.cdist(x_t, X).square() / (2 * sigma[:, None] ** 2)
        return torch.softmax(logits, dim=1) @ X

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        base = _status_bytes("VmRSS")
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_bytes("VmHWM") - base
    return {"seconds": time.perf_counter() - start, "peak_bytes": max(peak, 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.queries, args.device)))
        return
    print(f"device {args.device}, B = {args.queries} queries, n = 784, sigma = 0.5")
    print(
        f"{'N':>6} | {'dense s':>8} {'dense MB':>9} | {'stream s':>8} {'stream MB':>9} | ratio t"
    )
    for N in (1000, 4000, 15000, 60000):
        row = {}
        for kind in ("dense", "streaming"):
            out = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--queries",
                 str(args.queries), "--one", kind, str(N)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 16)},
            )  # fmt: skip
            row[kind] = json.loads(out.stdout)
        d, s = row["dense"], row["streaming"]
        print(
            f"{N:>6} | {d['seconds']:>8.3f} {d['peak_bytes'] / 2**20:>9.1f} | "
            f"{s['seconds']:>8.3f} {s['peak_bytes'] / 2**20:>9.1f} | "
            f"{s['seconds'] / d['seconds']:>6.2f}"
        )


if __name__ == "__main__":
    main()
