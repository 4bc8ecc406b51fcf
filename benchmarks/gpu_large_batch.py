"""The fused kernel on a batch whose element offsets pass 2^31 (its 64-bit row addressing).

With n = 3072 in bfloat16, B = 2^31 / n + 8192 = 707,242 rows make x_t and x_hat 4.3 GB each
(an H200 holds them). The rows around element 2^31 and the last rows of that one launch are
compared with the same rows launched alone (small offsets) and with the float64 reference: a
wrapped address reads another row, so the two launches would disagree by far more than the
kernel's own error against float64, which is the tolerance. Exits 1 when they disagree.

    python benchmarks/gpu_large_batch.py                                 # CUDA, about 1 minute
    TRITON_INTERPRET=1 python benchmarks/gpu_large_batch.py --device cpu --n 64 --rows 300
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lowrank.theory.denoisers import MixtureDenoiser
from lowrank.theory.mixtures import MoLRG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=3072)
    parser.add_argument("--rows", type=int, help="batch size B (default: 2^31 / n + 8192)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    B = args.rows or 2**31 // args.n + 8192
    mix = MoLRG(n=args.n, K=10, d=5, delta=0.2, seed=0)
    g = torch.Generator(device).manual_seed(0)
    # Random rows, not mixture samples: addressing is checked, and every row must differ.
    x_t = torch.randn(B, args.n, generator=g, device=device, dtype=dtype)
    sigma = torch.exp(torch.randn(B, generator=g, device=device))
    fused = MixtureDenoiser(mix, backend="triton")
    print(f"B = {B}, n = {args.n}, B * n = {B * args.n / 2**31:.3f} * 2^31, {args.dtype}, "
          f"x_t {x_t.numel() * x_t.element_size() / 1e9:.1f} GB")  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    x_hat = fused(x_t, sigma)
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"one launch over the whole batch: {time.perf_counter() - start:.3f} s")
    boundary = min(2**31 // args.n, B)
    failed = False
    for name, rows in [
        ("around element 2^31", slice(max(boundary - 1024, 0), min(boundary + 1024, B))),
        ("last rows", slice(max(B - 2048, 0), B)),
    ]:
        alone = fused(x_t[rows].clone(), sigma[rows].clone()).double()
        reference = MixtureDenoiser(mix, backend="torch")(x_t[rows].double(), sigma[rows].double())
        norm = reference.norm(dim=1).clamp_min(1e-30)
        launches = ((x_hat[rows].double() - alone).norm(dim=1) / norm).max().item()
        kernel = ((alone - reference).norm(dim=1) / norm).max().item()
        ok = launches <= kernel
        failed |= not ok
        verdict = "ok" if ok else "WRONG"
        print(f"{name:>20} (rows {rows.start}..{rows.stop - 1}): whole batch vs alone "
              f"{launches:.2e}, alone vs float64 {kernel:.2e}: {verdict}")  # fmt: skip
    sys.exit(int(failed))


if __name__ == "__main__":
    main()
