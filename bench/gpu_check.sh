#!/usr/bin/env bash
# On a GPU machine, from the repository root: build both compiled modules, then run the named
# stages (default: all of them, in this order). Logs go to $1 (default: $OUT if set, else
# /tmp/tilegrad-gpu-check). Needs CuPy, pybind11 and nvcc already installed (no package
# registry is assumed); PyTorch with CUDA, where present, is the timing peer.
#
#   bash bench/gpu_check.sh LOGDIR [test] [sanitize] [bench] [timing]
#
#   test      op-table parity on the cuda backends, and pytest -m cuda (every GPU test)
#   sanitize  the native GPU tests under compute-sanitizer memcheck, the shared-memory kernels'
#             tests under racecheck (where compute-sanitizer exists)
#   bench     tilegrad bench on cpu and cuda (quick sizes)
#   timing    the kernel rows: matmul (fp32, TF32, float16, bfloat16) against cuBLAS,
#             the memory-bound kernels against a copy, attention and conv against PyTorch
#
# Each stage fits in a few minutes, so a session limited to ten minutes per command can run
# "build + one stage" per call. The build is skipped when tilegrad._cuda is already installed
# from this exact tree (a stamp of the sources' hash).
set -uo pipefail
LOG="${1:-${OUT:-/tmp/tilegrad-gpu-check}}"
shift || true
STAGES="${*:-test sanitize bench timing}"
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
export CUPY_TF32=0

{ nvidia-smi; nvcc --version; python -c "import cupy; print('cupy', cupy.__version__)"
  python -c "import torch; print('torch', torch.__version__, torch.version.cuda)" 2>&1; } > "$LOG/machine.txt" 2>&1

stamp=$(cat setup.py $(git ls-files csrc kernels 2>/dev/null || find csrc kernels -type f) | sha1sum | cut -c1-16)
installed=$(python -c "import tilegrad, pathlib; print((pathlib.Path(tilegrad.__file__).parent / 'BUILD_STAMP').read_text())" 2>/dev/null)
if [ "$installed" != "$stamp" ]; then
    if ! TILEGRAD_CUDA=1 pip install --no-build-isolation --no-deps . > "$LOG/build.log" 2>&1; then
        tail -n 60 "$LOG/build.log"
        exit 1
    fi
    python -c "import tilegrad, pathlib; (pathlib.Path(tilegrad.__file__).parent / 'BUILD_STAMP').write_text('$stamp')"
fi
tilegrad doctor >> "$LOG/machine.txt" 2>&1 || { tail -n 30 "$LOG/machine.txt"; exit 1; }

status=0
for stage in $STAGES; do
    echo "== $stage"
    case "$stage" in
    test)
        tilegrad parity --backends cuda,cuda-reference > "$LOG/parity.txt" 2>&1 || status=1
        tail -n 5 "$LOG/parity.txt"
        python -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$LOG/pytest-cuda.log" | tail -n 30
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        ;;
    sanitize)
        if command -v compute-sanitizer > /dev/null; then
            compute-sanitizer --tool memcheck --error-exitcode 9 python -m pytest -q -x -p no:cacheprovider -m cuda \
                tests/native tests/cuda > "$LOG/memcheck.log" 2>&1 || status=1
            tail -n 5 "$LOG/memcheck.log"
            # racecheck is slow: the kernels that share tiles through shared memory, small cases
            compute-sanitizer --tool racecheck --error-exitcode 9 python -m pytest -q -x -p no:cacheprovider -m cuda \
                tests/native/test_cuda_attention.py tests/native/test_cuda_conv.py tests/native/test_cuda_kernels.py \
                -k "not large and not grid_stride" > "$LOG/racecheck.log" 2>&1 || status=1
            tail -n 5 "$LOG/racecheck.log"
        else
            echo "compute-sanitizer not found" | tee "$LOG/memcheck.log"
        fi
        ;;
    bench)
        tilegrad bench --devices cpu,cuda --json "$LOG/gpu-quick.json" 2>&1 | tee "$LOG/bench.txt" | tail -n 80
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        ;;
    timing)
        for script in "bench/matmul_gpu.py --json $LOG/matmul.json" "bench/rows_gpu.py --json $LOG/rows.json" \
                      "bench/attention_gpu.py --dtype float32" "bench/attention_gpu.py --dtype float16" \
                      "bench/attention_gpu.py --dtype bfloat16" "tests/native/timing_cuda_conv.py --batch 64"; do
            echo "-- $script" | tee -a "$LOG/timing.txt"
            python $script 2>&1 | tee -a "$LOG/timing.txt" | tail -n 25
            [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        done
        ;;
    *)
        echo "unknown stage $stage (test, sanitize, bench, timing)"
        status=1
        ;;
    esac
done
exit $status
