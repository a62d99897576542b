"""``tilegrad bench``: kernel throughput and per-op overhead, with peers measured in the same run.

Every case is first checked against a float64 NumPy answer (llm.c style); a wrong result, or an
exception, is reported as FAILED with no time. Times are medians of repeated samples after a
warm-up (``timing.measure``); flops and bytes come from the op table (``ops.OPS[op].cost``).

The report (``run()``'s return value, written by ``tilegrad bench --json FILE``), schema 1::

    {
      "schema": 1,                      # bumped when a key changes meaning or goes away
      "tilegrad": "0.1.0",
      "machine": {"cpu": str, "cores": int, "usable_cores": int,
                  "loadavg": [float, float, float] | null, "platform": str, "python": str,
                  "numpy": str, "torch": str | null, "torch_threads": int | null,
                  "native_cpu": {"built": bool, ...tilegrad.backends.cpu.info()},
                  "env": {name: value},   # thread settings that were set: OMP_NUM_THREADS, ...
                  "cuda": null | {"name": str, "count": int, "cupy": str, "native": {...}}},
      "settings": {"cases": [str], "sizes": "tiny"|"quick"|"full", "devices": [str],
                   "repeats": int, "min_time_s": float, "seed": int, "interleave": bool},
      "failed": int,                    # number of cases whose status is not "ok"
      "cases": [{
        "kind": "kernel" | "overhead",
        "op": str,                      # relu, add, softmax, matmul, sum | add, mul, relu
        "size": str,                    # "4M", "1024x4096", "512x512x512", "4x4"
        "device": "cpu" | "cuda",
        "impl": "tilegrad" | "numpy" | "torch" | "cupy",
        "kernels": "native" | "reference" | null,   # tilegrad's kernel choice; null for peers
        "mode": "grad" | "no_grad" | null,          # overhead cases (null for NumPy and kernels)
        "status": "ok" | "FAILED",
        "error": str | null,
        "time_s": float | null,         # median seconds per call; null when FAILED
        "best_s": float,                # fastest sample, seconds per call (ok cases)
        "number": int,                  # calls per timed sample (ok cases)
        "ratios": {peer: float},        # tilegrad rows only: tilegrad time / peer time (kernel
                                        # cases: ratio of medians; overhead: median of paired ratios)
        # kernel cases also have:
        "shapes": [[int]], "flops": float, "bytes": float,
        "gflops": float | null, "gbps": float | null,
        "native_kernel": bool,          # tilegrad/native rows: the backend has its own kernel
      }]
    }
"""
from .cases import KERNEL_OPS, SIZES, SPECS  # noqa: F401
from .runner import ALL_CASES, SCHEMA, available_devices, run  # noqa: F401
