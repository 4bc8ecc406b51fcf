r"""Ahead-of-time compilation of the fused kernel for real GPUs, on a machine without one.

Triton compiles for a named target without a device (the NVIDIA backend and ``ptxas`` ship in
the wheel). For each target (sm_80, sm_90), each input type (float32 with IEEE or TF32
products, float16, bfloat16) and each padded width ``M_PAD`` the launcher accepts, this module
builds the launch arguments with the launcher's own :func:`~.triton_projection.kernel_launch`,
specializes them as Triton's JIT does at launch, compiles, and reads what the hardware will see:
registers and spills (the log of Triton's own ``ptxas -v`` run), shared memory and warps (the
compiled metadata), an occupancy estimate, and whether any address offset derived from the
program id is computed in 32 bits (it wraps once ``B * n >= 2^31``).

The kernel module must be imported without ``TRITON_INTERPRET=1`` (under it, ``@triton.jit``
returns an interpreter object that cannot be compiled), so the tests run this module in a
subprocess::

    python -m tools.compile_report              # the table, both targets
    python -m tools.compile_report --json r.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

__all__ = [
    "CASES",
    "INPUTS",
    "SPILL_LIMIT",
    "TARGETS",
    "WIDTHS",
    "CompileResult",
    "compile_all",
    "compile_case",
    "narrow_program_offsets",
    "occupancy",
    "table",
]


@dataclass(frozen=True)
class Target:
    """Per-SM limits of one GPU architecture (CUDA C Programming Guide, compute capabilities)."""

    capability: int
    shared_per_block: int  # bytes, opt-in maximum of dynamic shared memory per block
    shared_per_sm: int  # bytes, shared memory per SM available to blocks
    registers_per_sm: int = 65536
    warps_per_sm: int = 64
    blocks_per_sm: int = 32


TARGETS = {
    "sm_80": Target(80, shared_per_block=163 * 1024, shared_per_sm=164 * 1024),  # A100
    "sm_90": Target(90, shared_per_block=227 * 1024, shared_per_sm=228 * 1024),  # H100, H200
}

# (name, dtype, float32_precision) of every input type the launcher accepts.
INPUTS = [
    ("fp32 ieee", torch.float32, "ieee"),
    ("fp32 tf32", torch.float32, "tf32"),
    ("fp16", torch.float16, "ieee"),
    ("bf16", torch.bfloat16, "ieee"),
]
# Every padded width: M_PAD = 16, 32, ..., MAX_M. The union dimension m = M_PAD - 6 is not a
# multiple of 16, like the paper's shapes (m = 50, 200), so no alignment is assumed that real
# mixtures would not give.
WIDTHS = [16, 32, 64, 128, 256]
CASES = [(name, width) for name, _, _ in INPUTS for width in WIDTHS]
# Shape of the launch the arguments are built for: a CIFAR-sized n, K = 10 classes. Only the
# divisibility of the integers by 16 reaches the compiled code (Triton specializes on it).
B, N, K = 4096, 3072, 10

# A few bytes of spill (ptxas parks a pointer or a loop bound) cost nothing measurable; whole
# tiles in local memory would. Above this, the launcher's choice is wrong for that width.
SPILL_LIMIT = 64


@dataclass
class CompileResult:
    target: str
    inputs: str
    M_PAD: int
    BLOCK_B: int
    BLOCK_N: int
    num_warps: int
    num_stages: int
    registers: int
    spill_bytes: int  # spill stores + spill loads, bytes per thread
    shared: int  # bytes per block
    warps_per_sm: int  # estimated resident warps of 64
    products: str  # how the PTX multiplies tiles: "wgmma", "mma" (mma.sync) or "fma"
    narrow_offsets: list[str]  # 32-bit program-id-derived address offsets (TTIR lines)
    seconds: float
    error: str | None = None


def occupancy(target: Target, registers: int, shared: int, num_warps: int) -> int:
    """Resident warps per SM, limited by registers (allocated per warp in units of 256), shared
    memory (plus the 1 KB the runtime reserves per block) and the block limit."""
    per_warp = math.ceil(max(registers, 1) * 32 / 256) * 256
    by_registers = target.registers_per_sm // (per_warp * num_warps)
    by_shared = target.shared_per_sm // (shared + 1024)
    by_warps = target.warps_per_sm // num_warps
    blocks = min(by_registers, by_shared, by_warps, target.blocks_per_sm)
    return blocks * num_warps


_OP = re.compile(r"^\s*(%[\w#:, %]+?) = ([\w.]+)\b(.*)$")
_VALUE = re.compile(r"%[\w]+")


def narrow_program_offsets(ttir: str) -> list[str]:
    """TTIR ``tt.addptr`` lines whose offset depends on the program id and is 32-bit.

    Row offsets such as ``rows * stride_xb`` reach ``B * n``; in i32 they wrap past 2^31.
    Dependence is followed forward from ``tt.get_program_id`` through every operation but
    loads (a loaded value is data, not an address).
    """
    tainted: set[str] = set()
    found = []
    for line in ttir.splitlines():
        match = _OP.match(line)
        if match is None:
            continue
        results, op, rest = match.groups()
        operands = _VALUE.findall(rest.split(" loc(")[0])
        if op == "tt.get_program_id" or (op != "tt.load" and tainted.intersection(operands)):
            tainted.update(_VALUE.findall(results))
        if op == "tt.addptr" and operands[1] in tainted:
            offset_type = rest.split(" : ")[-1].split(" loc(")[0].split(", ")[-1]
            if re.search(r"\bi32\b|xi32>", offset_type):
                found.append(line.strip().split(" loc(")[0])
    return found


def _products(ptx: str) -> str:
    """The tensor-core instruction family in the PTX, or ``"fma"`` when there is none."""
    if "wgmma.mma_async" in ptx:
        return "wgmma"
    return "mma" if re.search(r"\bmma\.sync\b", ptx) else "fma"


def _ptxas_numbers(log: str) -> tuple[int, int]:
    """Registers and spill bytes (stores + loads) from a ``ptxas -v`` log."""
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = sum(int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
    return registers, spills


def _launch_inputs(dtype: torch.dtype, width: int):
    """Inputs of the launch: CPU tensors only for their dtype, shape and alignment (never
    touched, so ``torch.empty`` leaves the pages unallocated)."""
    from lowrank.theory.kernels.reference import ProjectionParams

    m = width - 6
    p = ProjectionParams(
        W=torch.empty(N, m),
        lam=torch.empty(K, m),
        mean=torch.empty(K, m),
        log_pi=torch.empty(K),
        Q=None,
    )
    return torch.empty(B, N, dtype=dtype), torch.empty(B), p


def compile_case(target_name: str, inputs: str, width: int, config=None) -> CompileResult:
    """Compile one case for one target, exactly as the launcher would launch it (or with
    ``config``, a :class:`~.triton_projection.LaunchConfig` in place of its choice)."""
    import triton
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    from lowrank.theory.kernels.triton_projection import _projection_denoiser_kernel as kernel
    from lowrank.theory.kernels.triton_projection import kernel_launch

    target = TARGETS[target_name]
    gpu = triton.backends.compiler.GPUTarget("cuda", target.capability, 32)
    _, dtype, precision = next(row for row in INPUTS if row[0] == inputs)
    x_t, sigma, p = _launch_inputs(dtype, width)
    launch = kernel_launch(x_t, sigma, p, precision, config)
    args, kwargs = launch.args, launch.kwargs
    # What JITFunction.run does before it compiles (triton 3.7.1): bind, specialize (pointer
    # alignment, integers equal to 1 or divisible by 16), parse the options.
    backend = make_backend(gpu)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(
        backend, kwargs, bound, specialization, options
    )
    row = dict(
        target=target_name,
        inputs=inputs,
        M_PAD=kwargs["M_PAD"],
        BLOCK_B=kwargs["BLOCK_B"],
        BLOCK_N=kwargs["BLOCK_N"],
        num_warps=options.num_warps,
        num_stages=options.num_stages,
    )
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(
                ASTSource(kernel, signature, constexprs, attrs),
                target=gpu,
                options=options.__dict__,
            )
        registers, spills = _ptxas_numbers(log.getvalue())
    except Exception as err:  # a compile error is a result to report, not a crash
        message = f"{type(err).__name__}: {str(err)[:2000]}"
        seconds = time.perf_counter() - start
        return CompileResult(
            **row,
            registers=0,
            spill_bytes=0,
            shared=0,
            warps_per_sm=0,
            products="",
            narrow_offsets=[],
            seconds=seconds,
            error=message,
        )
    shared = compiled.metadata.shared
    return CompileResult(
        **row,
        registers=registers,
        spill_bytes=spills,
        shared=shared,
        warps_per_sm=occupancy(target, registers, shared, options.num_warps),
        products=_products(compiled.asm["ptx"]),
        narrow_offsets=narrow_program_offsets(compiled.asm["ttir"]),
        seconds=time.perf_counter() - start,
    )


def _compile_in_worker(case: tuple) -> CompileResult:
    import triton

    # ptxas's log is the only source of register and spill counts without a device; Triton
    # prints it when asked, and only when it runs ptxas, hence a fresh cache per worker.
    triton.knobs.nvidia.dump_ptxas_log = True
    triton.knobs.cache.dir = tempfile.mkdtemp(prefix="triton-aot-")
    try:
        return compile_case(*case)
    finally:
        shutil.rmtree(triton.knobs.cache.dir, ignore_errors=True)


def compile_all(targets=tuple(TARGETS), cases=None, workers=None) -> list[CompileResult]:
    """Every case for every target, compiled afresh, in parallel over the CPU cores; or the
    given ``(target, inputs, width[, config])`` tuples (arguments of :func:`compile_case`)."""
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter's kernels do not compile")
    cases = cases or [(t, name, width) for t in targets for name, width in CASES]
    workers = workers or min(len(cases), os.cpu_count() or 1)
    # spawn: a fresh interpreter per worker, whatever threads torch started in this one
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(_compile_in_worker, cases))


def table(results: list[CompileResult]) -> str:
    """The results as a Markdown table, one row per target, inputs and width."""
    lines = [
        "| target | inputs | M_PAD | BLOCK_B x BLOCK_N | warps | stages | registers | spill B "
        "| shared KB | warps/SM | products | 32-bit row offsets | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.target} | {r.inputs} | {r.M_PAD} | compile error: "
                         f"{r.error.splitlines()[0][:80]} |")  # fmt: skip
            continue
        lines.append(
            f"| {r.target} | {r.inputs} | {r.M_PAD} | {r.BLOCK_B} x {r.BLOCK_N} | {r.num_warps} "
            f"| {r.num_stages} | {r.registers} | {r.spill_bytes} | {r.shared / 1024:.0f} "
            f"| {r.warps_per_sm} | {r.products} | {len(r.narrow_offsets)} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--target", choices=sorted(TARGETS), nargs="+", default=sorted(TARGETS))
    args = parser.parse_args()
    start = time.perf_counter()
    results = compile_all(tuple(args.target))
    print(table(results))
    seconds = time.perf_counter() - start
    print(f"{len(results)} compilations in {seconds:.0f} s; spill limit {SPILL_LIMIT} B; warps/SM "
          "is an estimate (registers, shared memory, block limit)")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    sys.exit(any(r.error for r in results))


if __name__ == "__main__":
    main()
