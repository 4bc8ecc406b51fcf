"""Candidate tiles of the fused kernel, compiled for sm_80 and sm_90, ranked without a GPU.

For each input type and padded width, every candidate ``(BLOCK_B, BLOCK_N, num_warps)`` is
compiled for both targets (:mod:`tools.compile_report`) and ranked by the rules that
:func:`lowrank.theory.kernels.triton_projection.launch_config` states (:func:`rank`).

Prints every candidate and, per case, the pick next to the launcher's choice; exits 1 where they
differ. 240 compilations: 14 minutes on this project's 2 (shared) cores.

    python benchmarks/kernel_configs.py
    python benchmarks/kernel_configs.py --inputs fp16 --widths 64 256
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict

from lowrank.theory.kernels.triton_projection import LaunchConfig, launch_config
from tools import compile_report

BLOCK_B = (16, 32, 64)
SHAPES = ((64, 4), (32, 8))  # (BLOCK_N, num_warps)


def rank(results: list[compile_report.CompileResult]) -> tuple:
    """Sort key of one candidate from its results on every target (larger is better): fits
    without spills, rows in flight per SM, rows per program, resident warps, fewer registers."""
    fits = all(
        r.error is None
        and r.spill_bytes == 0
        and r.shared <= compile_report.TARGETS[r.target].shared_per_block
        for r in results
    )
    in_flight = min(r.warps_per_sm // r.num_warps * r.BLOCK_B for r in results)
    warps = min(r.warps_per_sm for r in results)
    return (fits, in_flight, results[0].BLOCK_B, warps, -max(r.registers for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for name, _, _ in compile_report.INPUTS]
    parser.add_argument("--inputs", nargs="+", default=names, choices=names)
    parser.add_argument("--widths", type=int, nargs="+", default=compile_report.WIDTHS)
    args = parser.parse_args()
    configs = [
        LaunchConfig(BLOCK_B=bb, BLOCK_N=bn, M_PAD=width, num_warps=nw, num_stages=3)
        for bb, (bn, nw), width in itertools.product(BLOCK_B, SHAPES, args.widths)
    ]
    cases = [
        (target, name, config.M_PAD, config)
        for target in compile_report.TARGETS
        for name in args.inputs
        for config in configs
    ]
    cases += [
        (t, name, w) for t in compile_report.TARGETS for name in args.inputs for w in args.widths
    ]
    results = compile_report.compile_all(cases=cases)
    chosen = results[-len(compile_report.TARGETS) * len(args.inputs) * len(args.widths) :]
    candidates = defaultdict(list)  # (inputs, width, tile) -> results on each target
    for r in results[: len(results) - len(chosen)]:
        candidates[(r.inputs, r.M_PAD, (r.BLOCK_B, r.BLOCK_N, r.num_warps))].append(r)
    print(compile_report.table(results[: len(results) - len(chosen)]))
    differ = False
    print("\n| inputs | M_PAD | pick (BLOCK_B, BLOCK_N, warps) | rows in flight | launcher |")
    print("|---|---|---|---|---|")
    for name in args.inputs:
        for width in args.widths:
            tiles = {k[2]: v for k, v in candidates.items() if k[:2] == (name, width)}
            pick = max(tiles, key=lambda tile: rank(tiles[tile]))  # noqa: B023
            _, dtype, precision = next(row for row in compile_report.INPUTS if row[0] == name)
            launcher = launch_config(width, dtype, precision)
            used = (launcher.BLOCK_B, launcher.BLOCK_N, launcher.num_warps)
            differ |= used != pick
            print(f"| {name} | {width} | {pick} | {rank(tiles[pick])[1]} | "
                  f"{used}{'' if used == pick else ' (differs)'} |")  # fmt: skip
    sys.exit(int(differ))


if __name__ == "__main__":
    main()
