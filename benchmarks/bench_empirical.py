"""Time and peak memory of the streaming memorizing denoiser against the dense formula.

Prints one table; asserts nothing. For N training points in n = 784 dimensions and B queries,
"dense" is ``softmax(-||x - x_i||^2 / 2 sigma^2) @ X`` with the whole ``(B, N)`` distance matrix
in memory; "streaming" is :class:`lowrank.EmpiricalDenoiser` (chunks of 4096, online
log-sum-exp). Each measurement runs in its own process; its peak memory is the rise of the
process's peak resident set (CPU) or of torch's peak allocation (CUDA) over what the data
already take. The data are uniform in [0, 1]^784, the scale of image pixels.

    python benchmarks/bench_empirical.py                 # CPU, N up to 60000
    python benchmarks/bench_empirical.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from lowrank import EmpiricalDenoiser


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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
        base = _rss()
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
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
