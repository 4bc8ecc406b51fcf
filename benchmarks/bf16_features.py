"""Feature extraction under bfloat16 autocast against float32, on chapter 5's trained network:
its speed, and whether the probes it feeds change (issue 25: use bf16 only where a paired
comparison shows no difference beyond noise). Prints two tables; asserts nothing.

The same probe rows as chapter 5 (class-balanced, seed + 3), the same noise draw in both
precisions, every block at every level of the paper's grid. For each block and level, the
logistic probe is fitted on each precision's features and scored on the same test images; the
difference of per-image correctness, bf16 minus float32, gets a paired 95% interval
(:func:`lowrank.measure.stats.paired_interval`).

    python benchmarks/bf16_features.py                 # 5000 + 5000 images, about 6 min on 2 cores
    python benchmarks/bf16_features.py --images 1000   # a smaller check

Chapter 5's network is the one ``notebooks/params/standard.yaml`` names; it must be in the model
cache (``LOWRANK_CACHE``, as :func:`lowrank.nets.runs.cache_root` finds it), else the script says
how to train it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import yaml

from lowrank.data import balanced_subset
from lowrank.measure import stats
from lowrank.measure.features import features_across_sigma
from lowrank.measure.probes import probe_across_sigma
from lowrank.nets.cache import is_cached, load_unet, training_images
from lowrank.nets.runs import UNetRun, cache_root
from lowrank.theory import schedules

STANDARD = Path(__file__).resolve().parents[1] / "notebooks" / "params" / "standard.yaml"


def chapter5_run(params: dict) -> UNetRun:
    """Chapter 5's network as its notebook names it from the profile's parameters."""
    return UNetRun(dataset=params["dataset"], size=params["image_size"] or None,
                   train_images=params["unet_train_images"] or None,
                   channels=tuple(params["unet_channels"]), epochs=params["unet_epochs"],
                   seed=params["seed"], snapshots=(params["early_epoch"],))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000,
                        help="probe training images, and as many test images")  # fmt: skip
    args = parser.parse_args()
    params = yaml.safe_load(STANDARD.read_text())
    run = chapter5_run(params)
    if not is_cached(run):
        sys.exit(f"chapter 5's standard network is not in {cache_root()}: train it with "
                 f"`python -m lowrank train --epochs {run.epochs} --snapshots "
                 f"{params['early_epoch']}` (about 30 min on 2 cores) or set LOWRANK_CACHE to "
                 "a cache that holds it")  # fmt: skip
    den = load_unet(run, progress=False).denoiser
    x_train, y_train = training_images(run, "train")
    x_test, y_test = training_images(run, "test")
    gen = torch.Generator().manual_seed(params["seed"] + 3)  # chapter 5's probe rows
    train_rows = balanced_subset(y_train, args.images, gen)
    test_rows = balanced_subset(y_test, args.images, gen)
    x = torch.cat([x_train[train_rows], x_test[test_rows]])
    y_tr, y_te = y_train[train_rows], y_test[test_rows]
    N = len(train_rows)
    sigmas = schedules.edm_probe_sigmas()
    names = den.block_names()
    features, seconds = {}, {}
    for precision, context in (
        ("float32", contextlib.nullcontext()),
        ("bf16", torch.autocast("cpu", dtype=torch.bfloat16)),
    ):
        start = time.perf_counter()
        with context:
            F = features_across_sigma(den, names, x, sigmas, seed=params["seed"])
        seconds[precision] = time.perf_counter() - start
        features[precision] = {name: f.float() for name, f in F.items()}
    rate = {p: len(x) * len(sigmas) / s for p, s in seconds.items()}
    print(f"\n{len(x)} images x {len(sigmas)} levels, every block in one pass, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'precision':<10} {'images/s':>9} {'ratio':>6}")
    for p in seconds:
        print(f"{p:<10} {rate[p]:9.0f} {rate[p] / rate['float32']:6.2f}")

    print("\nbf16 minus float32 probe accuracy, paired on the same test images (points)")
    print(f"{'block':<15} {'float32 max':>11} {'largest |diff|':>15} {'at sigma':>9} "
          f"{'95% interval':>18} {'levels excl. 0':>15}")  # fmt: skip
    widest, excluded = 0.0, 0
    for name in names:
        curves = {
            p: probe_across_sigma(sigmas, list(F[name][:, :N]), y_tr, list(F[name][:, N:]), y_te)
            for p, F in features.items()
        }
        diffs = [stats.paired_interval(b, a) for b, a in
                 zip(curves["bf16"].correct, curves["float32"].correct, strict=True)]  # fmt: skip
        worst = max(range(len(diffs)), key=lambda i: abs(diffs[i].mean))
        d = diffs[worst]
        outside = sum(not (p.low <= 0 <= p.high) for p in diffs)
        excluded += outside
        widest = max(widest, max((p.high - p.low) / 2 for p in diffs))
        print(f"{name:<15} {100 * curves['float32'].accuracy.max().item():11.2f} "
              f"{100 * d.mean:+15.2f} {sigmas[worst].item():9.3f} "
              f"[{100 * d.low:+7.2f}, {100 * d.high:+7.2f}] "
              f"{outside:>11d} of {len(sigmas)}")  # fmt: skip
    print(f"\nwidest 95% half-width: {100 * widest:.2f} points; intervals excluding 0: {excluded} "
          f"of {len(names) * len(sigmas)} (about 5% expected by chance at 95%)")  # fmt: skip


if __name__ == "__main__":
    main()
