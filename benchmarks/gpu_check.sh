#!/usr/bin/env bash
# The GPU check of the projection-denoiser kernel, one script for a machine lent for minutes:
#   correctness  tests/theory/test_kernels.py and tests/theory/test_denoisers.py on CUDA: the kernel against
#                float64 in IEEE, TF32, float16 and bfloat16 (bfloat16 runs only here);
#   compile      the ahead-of-time table for sm_80 and sm_90 that `make test` checks on CPU
#                (needs triton 3.7.1: it reuses Triton's launch-time specialization);
#   benchmark    the fused kernel against the fastest torch-composed version of the same
#                precision (cuBLAS GEMMs and elementwise stage 2) and the measured roofline,
#                m = 50 and 200, in float32 (IEEE and TF32) and bfloat16;
#   large-batch  a bfloat16 batch whose element offsets pass 2^31 (the 64-bit row addressing).
# Each step has a time limit (8 minutes in all) and runs whatever happened before it; the exit
# status is 1 if any step failed. Uses the machine's own python3 with torch and triton (set
# PY=... for another), from the repository root:
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
PY=${PY:-python3}
failed=()

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2 start=$SECONDS status=0
  shift 2
  echo "=== $name (limit ${limit} s): $*"
  timeout "$limit" "$@" || status=$?
  echo "=== $name: exit $status after $((SECONDS - start)) s"
  if [ "$status" != 0 ]; then failed+=("$name"); fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
step correctness 120 $PY -m pytest -p no:cacheprovider -q --device cuda \
  tests/theory/test_kernels.py tests/theory/test_denoisers.py
step compile 90 $PY -m tools.compile_report
step benchmark 120 $PY benchmarks/bench_projection_denoiser.py --device cuda --repeats 10 \
  --d 5 20
step benchmark-bf16 60 $PY benchmarks/bench_projection_denoiser.py --device cuda --repeats 10 \
  --d 5 20 --n 3072 --dtype bfloat16
step large-batch 90 $PY benchmarks/gpu_large_batch.py
if [ ${#failed[@]} != 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all steps passed"
