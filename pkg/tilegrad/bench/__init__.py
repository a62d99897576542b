"""``tilegrad bench``: kernel throughput against the machine's peaks and against peers measured
in the same run, the GPU's speedup and crossover, and the per-op overhead.

Every case is first checked against a float64 NumPy answer (llm.c style); a wrong result, or an
exception, is reported as FAILED with no time. Times are medians of repeated samples after a
warm-up (``timing.measure_together``; device events on a GPU), each call on the next of up to 16
copies of the inputs (``runner.rotate_count``); flops and bytes come from the op table
(``ops.OPS[op].cost``). Model cases (``bench/models.py``) time one training step of each example
model, and of an MLP and a CNN with PyTorch twins.

The report (``run()``'s return value, written by ``tilegrad bench --json FILE``), schema 2::

    {
      "schema": 2,                      # bumped when a key changes meaning or goes away
      "tilegrad": "0.1.0",
      "date": "2026-11-21", "duration_s": float, "command": str,
      "machine": {"cpu": str, "cores": int, "usable_cores": int,
                  "loadavg": [float, float, float] | null, "platform": str, "python": str,
                  "numpy": str, "torch": str | null, "torch_threads": int | null,
                  "native_cpu": {"built": bool, ...tilegrad.backends.cpu.info()},
                  "env": {name: value},   # thread settings that were set: OMP_NUM_THREADS, ...
                  "cuda": null | {"name": str, "count": int, "cupy": str, "native": {...}}},
      "settings": {"cases": [str], "sizes": "tiny"|"quick"|"full"|[int], "devices": [str],
                   "dtypes": [str], "peers": [str], "repeats": int, "min_time_s": float,
                   "seed": int, "interleave": bool},
      "peaks": {device: {"gflops": {dtype: float}, "gbps": float,
                         "method": {"compute": str, "memory": str}}},
      "failed": int,                    # number of cases whose status is not "ok"
      "cases": [{
        "kind": "kernel" | "overhead" | "model",
        "op": str,                      # relu, add, softmax, matmul, sum | add, mul, relu | a model
        "size": str,                    # "4M", "1024x4096", "512x512x512", "4x4"
        "dtype": str,                   # "float32", ...
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
        "shapes": [[int]], "flops": float, "bytes": float, "rotate": int,  # input copies cycled
        "cache_resident": bool,         # all those copies fit in the last-level cache
        "gflops": float | null, "gbps": float | null,
        "intensity": float | null,      # flops / bytes
        "bound": "memory" | "compute" | null,       # against the device's peak flops / peak bandwidth
        "pct_peak": float | null,       # per cent of the roofline at this intensity
        "speedup_vs_cpu": float | null, # cuda rows: the same impl's CPU time / this time
        "native_kernel": bool,          # tilegrad/native rows: the backend has its own kernel
        # model cases also have (size is "batch N"; time_s is seconds per training step):
        "samples_per_s": float | null, "first_loss": float,   # tilegrad rows: the checked step's loss
      }],
      "crossover": [{"op": str, "dtype": str,
                     "size": str | null,                   # smallest size where GPU + transfer < CPU
                     "size_without_transfer": str | null,  # same, kernel time alone
                     "sizes": [{"size": str, "cpu_s": float, "gpu_s": float, "transfer_s": float,
                                "gpu_total_s": float}]}]   # empty without both devices
    }
"""
from .cases import KERNEL_OPS, SIZES, SPECS  # noqa: F401
from .peers import PEERS  # noqa: F401
from .runner import ALL_CASES, SCHEMA, available_devices, run  # noqa: F401
