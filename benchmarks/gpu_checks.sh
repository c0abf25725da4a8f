#!/usr/bin/env bash
# Every check that needs a GPU, as one script for a short loan of a GPU machine (about 8 minutes on
# an H100; each step has its own time limit so that one slow step cannot eat the others' time).
# Runs with the machine's own python3 (needs torch, triton, numba, h5py, numpy, scipy, pytest; no
# snakemake). Output goes to the terminal and to $OUT (default /tmp/inpca-gpu-checks).
#
#     bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/inpca-gpu-checks}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
"$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" \
    || { echo "gpu_checks.sh: no CUDA GPU visible to $PY; run this on a GPU machine" >&2; exit 1; }
step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.txt, report its exit status
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}
step gpu 20 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
step gpu-tests 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/unit/test_distances.py
step distances-cuda 240 "$PY" benchmarks/distances.py --device cuda
step training-cuda 150 "$PY" benchmarks/training.py --device cuda
