"""The machine's peaks, measured by the bench itself at the start of a run: compute (GFLOP/s per
dtype) and memory bandwidth (GB/s, bytes read plus bytes written) of each device.

- CPU compute: the best of a large GEMM through NumPy's BLAS (OpenBLAS's FMA micro-kernels run
  within a few per cent of the cores' FMA peak; ``tilegrad._cpu`` has no FMA-loop probe of its
  own yet). CPU bandwidth: ``np.copyto`` between two buffers of 4x the last-level cache.
- GPU compute: a large cuBLAS GEMM through CuPy (FP32 math unless CuPy is told otherwise). GPU
  bandwidth: a device-to-device copy of 1 GiB. Both timed with device events.

``peaks[device] = {"gflops": {dtype: float}, "gbps": float, "method": {...}}``.
"""
import os

import numpy as np

from .timing import cuda_event_clock, measure

CPU_GEMM_N = 1024
CPU_COPY_BYTES = None   # None: 4x the last-level cache
GPU_GEMM_N = 8192
GPU_COPY_BYTES = 1 << 30


def cache_bytes(device="cpu"):
    """Size of the last-level cache (L3 on the CPU, L2 on a GPU); 32 MiB when unknown."""
    if device == "cuda":
        try:
            import cupy
            return int(cupy.cuda.Device().attributes["L2CacheSize"])
        except Exception:
            return 32 << 20
    for index in (3, 2):
        try:
            with open(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size") as f:
                text = f.read().strip()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
            return int(text.rstrip("KM")) * scale
        except (OSError, ValueError):
            continue
    return 32 << 20


def _best(fn, repeats, sync=None, clock=None):
    return measure(fn, repeats=repeats, sync=sync, warmup=1, min_time=0.02, clock=clock).best


def cpu_peaks(dtypes=("float32",), repeats=10):
    rng = np.random.default_rng(0)
    gflops = {}
    n = CPU_GEMM_N
    for name in dtypes:
        if name not in ("float32", "float64"):
            continue  # NumPy has no BLAS GEMM for float16: no compute peak to compare with
        a = rng.standard_normal((n, n)).astype(name)
        b = rng.standard_normal((n, n)).astype(name)
        out = np.empty_like(a)
        gflops[name] = 2 * n ** 3 / _best(lambda: np.matmul(a, b, out=out), repeats) / 1e9
    elems = (CPU_COPY_BYTES or 4 * cache_bytes("cpu")) // 4
    src = np.ones(elems, np.float32)
    dst = np.empty_like(src)
    gbps = 2 * src.nbytes / _best(lambda: np.copyto(dst, src), repeats) / 1e9
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return {"gflops": gflops, "gbps": gbps,
            "method": {"compute": f"NumPy BLAS GEMM {n}x{n}x{n}, best of {repeats}"
                                  + (f" ({threads} threads)" if threads else ""),
                       "memory": f"np.copyto of {src.nbytes >> 20} MiB (read + write), best of {repeats}"}}


def gpu_peaks(dtypes=("float32",), repeats=5):
    import tilegrad
    cp = tilegrad.cuda.require()
    clock = cuda_event_clock(cp.cuda.Event, tilegrad.cuda.synchronize)
    n = GPU_GEMM_N
    gflops = {}
    for name in dtypes:
        a = cp.random.standard_normal((n, n), dtype=cp.float32).astype(name)
        b = cp.random.standard_normal((n, n), dtype=cp.float32).astype(name)
        out = cp.empty_like(a)
        gflops[name] = 2 * n ** 3 / _best(lambda: cp.matmul(a, b, out=out), repeats, clock=clock) / 1e9
        del a, b, out
    src = cp.ones(GPU_COPY_BYTES // 4, cp.float32)
    dst = cp.empty_like(src)
    gbps = 2 * src.nbytes / _best(lambda: cp.copyto(dst, src), repeats, clock=clock) / 1e9
    del src, dst
    cp.get_default_memory_pool().free_all_blocks()
    return {"gflops": gflops, "gbps": gbps,
            "method": {"compute": f"cuBLAS GEMM {n}x{n}x{n} through CuPy, device events, best of {repeats}",
                       "memory": f"device copy of {GPU_COPY_BYTES >> 20} MiB (read + write), device events, "
                                 f"best of {repeats}"}}


def measure_peaks(device, dtypes):
    return cpu_peaks(dtypes) if device == "cpu" else gpu_peaks(dtypes)
