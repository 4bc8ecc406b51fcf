#!/usr/bin/env bash
# The GPU check of the projection-denoiser kernel: correctness on CUDA (IEEE, TF32, fp16, bf16),
# then the benchmark tables. About 10 minutes on one H100/H200. Uses the machine's own python3
# with torch and triton (the project's pins are for the CPU machine); prints everything.
#   bash benchmarks/gpu_check.sh 2>&1 | tee gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
python3 -m pytest -p no:cacheprovider -q --device cuda tests/test_kernels.py tests/test_denoisers.py
python3 benchmarks/bench_projection_denoiser.py --device cuda --repeats 10
python3 benchmarks/bench_empirical.py --device cuda
