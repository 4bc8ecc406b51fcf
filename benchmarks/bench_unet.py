"""Speed of chapter 05's network: training, bfloat16 autocast, feature extraction, probes.

Prints one table; asserts nothing. All rows in one process, one after the other, on random
inputs of the chapter's shape (the speed does not depend on the values):

* training steps of ``UNetDenoiser.small(16, channels=(32, 64))`` (DDPM loss, Adam, batch 128)
  in float32, and under ``torch.autocast(dtype=torch.bfloat16)``;
* a bare forward pass of the network in eval mode, against
  :func:`lowrank.measure.features.features_across_sigma` on every block (hooks, pooling, noise),
  on the same 1024 images in batches of 256, alternated, best of three rounds;
* one logistic probe (:func:`lowrank.measure.probes.logistic_probe`) on 5000 features of width 64,
  and on 5000 noisy images (width 256).

    python benchmarks/bench_unet.py             # about 2 minutes on 2 cores
    python benchmarks/bench_unet.py --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from lowrank.measure.features import features_across_sigma
from lowrank.measure.probes import logistic_probe
from lowrank.nets.unet import UNetDenoiser


def _rate(step, images: int, repeats: int) -> float:
    """Images per second of ``step`` (``images`` per call), after two warm-up calls."""
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return images * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    device, B = args.device, 128
    torch.manual_seed(0)
    den = UNetDenoiser.small(16, 1, (32, 64)).to(device)
    x = torch.rand(B, 1, 16, 16, device=device) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(den.parameters(), 1e-3)
    rows = []

    def train_step(autocast):
        context = (
            torch.autocast(device, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        )
        with context:
            loss = den.loss(x, gen)
        optimizer.zero_grad()
        loss.float().backward()
        optimizer.step()

    fp32 = _rate(lambda: train_step(False), B, args.repeats)
    rows.append(("training step, float32", fp32, 1.0))
    bf16 = _rate(lambda: train_step(True), B, args.repeats)
    rows.append(("training step, bfloat16 autocast", bf16, bf16 / fp32))

    den.eval()
    names = den.block_names()
    x_many = x.repeat(8, 1, 1, 1)  # 1024 images in batches of 256, as the chapter runs them
    sigma = torch.full((256,), 0.1, device=device)

    def bare():
        with torch.no_grad():
            for i in range(0, len(x_many), 256):
                den(x_many[i : i + 256], sigma)

    def hooked():
        features_across_sigma(den, names, x_many, [0.1], batch_size=256, progress=False)

    # alternate the two, best of three rounds: the machine's speed drifts by about 10%
    rounds = [(_rate(bare, len(x_many), 2), _rate(hooked, len(x_many), 2)) for _ in range(3)]
    bare_rate, hooked_rate = max(r[0] for r in rounds), max(r[1] for r in rounds)
    rows.append(("forward (eval), bare, batches of 256", bare_rate, 1.0))
    rows.append((f"features of {len(names)} blocks (hooks, pooling, noise)", hooked_rate,
                 hooked_rate / bare_rate))  # fmt: skip

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(5000) % 10
    for width in (64, 256):
        F = torch.randn(5000, width, generator=g) + torch.nn.functional.one_hot(labels, width)
        start = time.perf_counter()
        logistic_probe(F, labels, F, labels)
        seconds = time.perf_counter() - start
        rows.append((f"logistic probe, 5000 x {width} (s per fit)", seconds, None))

    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"| {'what':<48} | {'images/s (or s)':>15} | {'ratio':>6} |")
    print(f"|{'-' * 50}|{'-' * 17}|{'-' * 8}|")
    for what, value, ratio in rows:
        shown = f"{ratio:.2f}" if ratio is not None else ""
        print(f"| {what:<48} | {value:>15.1f} | {shown:>6} |")


if __name__ == "__main__":
    main()
