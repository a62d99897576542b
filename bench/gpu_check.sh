#!/usr/bin/env bash
# On a GPU machine, from the repository root: build both compiled modules, run the GPU tests
# (op-table parity on the cuda backends, native CUDA kernels, device transfers), run them once
# more under compute-sanitizer where it exists, and run the CPU+GPU bench. Logs go to $1
# (default: $OUT if set, else /tmp/tilegrad-gpu-check): eight files at most.
# Needs CuPy, pybind11 and nvcc already installed (no package registry is assumed).
set -uo pipefail
LOG="${1:-${OUT:-/tmp/tilegrad-gpu-check}}"
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1

{ nvidia-smi; nvcc --version; python -c "import cupy; print('cupy', cupy.__version__)"; } > "$LOG/machine.txt" 2>&1

if ! TILEGRAD_CUDA=1 pip install --no-build-isolation --no-deps . > "$LOG/build.log" 2>&1; then
    tail -n 60 "$LOG/build.log"
    exit 1
fi

status=0
tilegrad doctor >> "$LOG/machine.txt" 2>&1 || status=1
tilegrad parity --backends cuda,cuda-reference > "$LOG/parity.txt" 2>&1 || status=1
tail -n 5 "$LOG/parity.txt"
python -m pytest -q -m cuda tests 2>&1 | tee "$LOG/pytest-cuda.log" | tail -n 30
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if command -v compute-sanitizer > /dev/null; then
    compute-sanitizer --tool memcheck --error-exitcode 9 python -m pytest -q -x -m cuda tests/native tests/cuda \
        > "$LOG/memcheck.log" 2>&1 || status=1
    tail -n 5 "$LOG/memcheck.log"
fi

tilegrad bench --devices cpu,cuda --json "$LOG/gpu-quick.json" --plot "$LOG/gpu-quick.png" 2>&1 | tee "$LOG/bench.txt" | tail -n 80
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
