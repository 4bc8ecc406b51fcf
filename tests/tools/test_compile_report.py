"""The fused kernel compiled ahead of time for sm_80 and sm_90, on this CPU-only machine.

The interpreter runs of ``tests/theory/test_kernels.py`` check the arithmetic; they cannot see
what a
GPU compiler rejects, spills or addresses in 32 bits. One subprocess (the kernel module must be
imported without ``TRITON_INTERPRET=1``) compiles every configuration the launcher produces with
:mod:`tools.compile_report`, about a minute on 2 cores; the table it prints is
``python -m tools.compile_report``.
"""

import json
import os
import subprocess
import sys

import pytest

from lowrank.theory import kernels
from tools.compile_report import (
    CASES,
    SPILL_LIMIT,
    TARGETS,
    narrow_program_offsets,
)

pytestmark = pytest.mark.skipif(not kernels.triton_available(), reason="triton not installed")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """``{(target, inputs, M_PAD): result}`` of compiling every case for every target."""
    path = tmp_path_factory.mktemp("compile") / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "tools.compile_report", "--json", str(path)],
        env={**os.environ, "TRITON_INTERPRET": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not path.exists():
        pytest.fail(f"compile_report wrote no results:\n{run.stdout[-2000:]}{run.stderr[-4000:]}")
    return {(r["target"], r["inputs"], r["M_PAD"]): r for r in json.loads(path.read_text())}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("inputs, width", CASES)
def test_compiles_without_spills_within_shared_memory(compiled, target, inputs, width):
    result = compiled[(target, inputs, width)]
    assert result["error"] is None, result["error"]
    assert result["spill_bytes"] <= SPILL_LIMIT, result
    assert result["shared"] <= TARGETS[target].shared_per_block, result
    assert result["warps_per_sm"] >= result["num_warps"], result  # one block fits on an SM


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("inputs, width", CASES)
def test_row_offsets_are_64_bit(compiled, target, inputs, width):
    """``rows * stride_xb`` reaches ``B * n``, which passes 2^31 at B = 699,051 rows of
    n = 3072 (4.3 GB in bfloat16, an H200 holds it): in 32 bits the address wraps."""
    assert compiled[(target, inputs, width)]["narrow_offsets"] == []


def test_narrow_offset_detection():
    """The IR scan flags a 32-bit offset that depends on the program id, and only that one."""
    ttir = """
    %pid = tt.get_program_id x : i32 loc(#loc1)
    %rows = arith.muli %pid, %c16_i32 : i32 loc(#loc2)
    %r = tt.splat %rows : i32 -> tensor<16xi32> loc(#loc3)
    %p = tt.splat %x_ptr : !tt.ptr<f32> -> tensor<16x!tt.ptr<f32>> loc(#loc4)
    %a = tt.addptr %p, %r : tensor<16x!tt.ptr<f32>>, tensor<16xi32> loc(#loc5)
    %r64 = arith.extsi %r : tensor<16xi32> to tensor<16xi64> loc(#loc6)
    %b = tt.addptr %p, %r64 : tensor<16x!tt.ptr<f32>>, tensor<16xi64> loc(#loc7)
    %c = tt.addptr %p, %cols : tensor<16x!tt.ptr<f32>>, tensor<16xi32> loc(#loc8)
    %v = tt.load %b : tensor<16x!tt.ptr<f32>> loc(#loc9)
    %i = arith.fptosi %v : tensor<16xf32> to tensor<16xi32> loc(#loc10)
    %d = tt.addptr %p, %i : tensor<16x!tt.ptr<f32>>, tensor<16xi32> loc(#loc11)
    """
    assert narrow_program_offsets(ttir) == [
        "%a = tt.addptr %p, %r : tensor<16x!tt.ptr<f32>>, tensor<16xi32>"
    ]
