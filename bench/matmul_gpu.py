"""GPU timing of tilegrad's matmul kernels against cuBLAS (through CuPy and PyTorch), in one
process, for the issue's rows: float32 without tensor cores, TF32, float16 and bfloat16 at
8192^3 by default. The 16-bit rows time the mma.sync kernel (version 1) and, on a compute
capability 9.0 GPU, Hopper's wgmma kernel (version 2) against PyTorch's (cuBLAS). On a GPU machine, after building with CUDA:

    PYTHONPATH=pkg python bench/matmul_gpu.py [--size 8192] [--repeats 10] [--only fp32,tf32,f16,bf16]
        [--json results.json]

Every kernel is first checked on a smaller ragged problem (and transposed operands, a bias and
ReLU) against a float64 product of the same (rounded) inputs; a wrong one is reported and not
timed. Times are medians of CUDA-event samples (tilegrad.bench.timing) on the stream both
libraries launch on; TFLOP/s counts 2 M N K. Peers: CuPy's matmul (cuBLAS SGEMM; CuPy's TF32
mode stays off unless CUPY_TF32=1 is set, which this script refuses) and PyTorch's, with
torch.backends.cuda.matmul.allow_tf32 off for float32 and on for the TF32 row.
"""
import argparse
import json
import os

import numpy as np

import bfloat16_bits  # bench/, the script's own folder


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=8192, help="M = N = K of the timed product")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--only", default="fp32,tf32,f16,bf16")
    p.add_argument("--json", help="write the rows here as JSON")
    return p.parse_args()


# (m, n, k, trans_a, trans_b) of the correctness check before timing: ragged, every transpose.
CHECK_SHAPES = [(1000, 777, 552, False, False), (256, 136, 1024, True, False), (129, 520, 64, False, True),
                (640, 384, 200, True, True)]
# The same for the wgmma kernel, which takes K and stored row lengths that are multiples of 8 only.
CHECK_SHAPES_MULT8 = [(1000, 776, 552, False, False), (256, 136, 1024, True, False), (129, 520, 64, False, True),
                      (640, 384, 200, True, True)]


class Kind:
    """One row of the table: how tilegrad multiplies arrays of this kind, and how the inputs are
    made and read back as float64."""

    def __init__(self, name, make, back, run, rtol, shapes=None):
        self.name, self.make, self.back, self.run, self.rtol = name, make, back, run, rtol
        self.shapes = shapes or CHECK_SHAPES


def kinds(cp, _cuda):
    stream = lambda: cp.cuda.get_current_stream().ptr  # noqa: E731

    def f32_run(version):
        def run(a, b, out, **kw):
            _cuda.matmul(a, b, out, stream=stream(), version=version, **kw)
        return run

    def half_run(bf16, version):
        def run(a, b, out, **kw):
            _cuda.matmul_half(a, b, out, stream=stream(), bfloat16=bf16, version=version, **kw)
        return run

    # version 1: mma.sync (sm_80+); version 2: Hopper's wgmma, on compute capability 9.0 only.
    hopper = cp.cuda.Device().compute_capability == "90"

    def half_kinds(label, bf16, rtol, **conv):
        rows = [Kind(f"tilegrad {label} v1 mma.sync", run=half_run(bf16, 1), rtol=rtol, **conv)]
        if hopper:
            rows.append(Kind(f"tilegrad {label} v2 wgmma", run=half_run(bf16, 2), rtol=rtol,
                             shapes=CHECK_SHAPES_MULT8, **conv))
        return rows

    f32 = dict(make=lambda x: x.astype(cp.float32), back=lambda x: x.astype(cp.float64))
    f16 = dict(make=lambda x: x.astype(cp.float16), back=lambda x: x.astype(cp.float64))
    bf16 = dict(make=lambda x: bfloat16_bits.to_bits(cp, x),
                back=lambda x: bfloat16_bits.to_float32(cp, x).astype(cp.float64))
    return {
        "fp32": [Kind("tilegrad fp32 v1", run=f32_run(1), rtol=1e-5, **f32),
                 Kind("tilegrad fp32 v2", run=f32_run(2), rtol=1e-5, **f32)],
        "tf32": [Kind("tilegrad tf32 v3", run=f32_run(3), rtol=3e-3, **f32)],
        "f16": half_kinds("float16", False, 4e-3, **f16),
        "bf16": half_kinds("bfloat16", True, 2e-2, **bf16),
    }


def check(cp, kind):
    """Raises SystemExit unless `kind` matches a float64 product on ragged and transposed
    problems, with a bias (of the inputs' type) and ReLU."""
    rng = np.random.default_rng(0)
    for m, n, k, ta, tb in kind.shapes:
        a = kind.make(cp.asarray(rng.standard_normal((k, m) if ta else (m, k))))
        b = kind.make(cp.asarray(rng.standard_normal((n, k) if tb else (k, n))))
        bias = kind.make(cp.asarray(rng.standard_normal(n)))
        out = kind.make(cp.full((m, n), cp.nan))
        kind.run(a, b, out, trans_a=ta, trans_b=tb, bias=bias, activation="relu")
        a64, b64, bias64 = kind.back(a), kind.back(b), kind.back(bias)
        a64, b64 = (a64.T if ta else a64), (b64.T if tb else b64)
        want = cp.maximum(a64 @ b64 + bias64, 0)
        scale = cp.abs(a64) @ cp.abs(b64) + cp.abs(bias64)
        err = float((cp.abs(kind.back(out) - want) / scale).max())
        if not err < kind.rtol:
            raise SystemExit(f"{kind.name}: {m}x{n}x{k} trans=({ta},{tb}) off by {err:.2e} relative to "
                             f"|a|@|b|; not timed")


def torch_peer(cp, name, a, b):
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
    if name == "bf16":
        ta, tb = (torch.as_tensor(x.view(cp.int16), device="cuda").view(torch.bfloat16) for x in (a, b))
    else:
        ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
    out = torch.empty((ta.shape[0], tb.shape[1]), dtype=ta.dtype, device="cuda")
    return lambda: torch.matmul(ta, tb, out=out)


def main():
    args = parse_args()
    if os.environ.get("CUPY_TF32", "0") != "0":
        raise SystemExit("CUPY_TF32 is set: CuPy's float32 matmul would not be SGEMM")
    import cupy as cp
    from tilegrad import _cuda
    from tilegrad.bench.timing import cuda_event_clock, measure_together

    props = cp.cuda.runtime.getDeviceProperties(0)
    print(f"{props['name'].decode()}, CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, "
          f"driver {cp.cuda.runtime.driverGetVersion()}; {args.size}^3, medians of {args.repeats}")
    n = args.size
    flops = 2.0 * n * n * n
    clock = cuda_event_clock(cp.cuda.Event, cp.cuda.get_current_stream().synchronize)
    sync = cp.cuda.get_current_stream().synchronize
    rng = np.random.default_rng(1)
    a64 = cp.asarray(rng.standard_normal((n, n)), dtype=cp.float32)
    b64 = cp.asarray(rng.standard_normal((n, n)), dtype=cp.float32)
    rows = []
    table = kinds(cp, _cuda)
    for name in args.only.split(","):
        group = table[name]
        for kind in group:
            check(cp, kind)
        a, b = group[0].make(a64), group[0].make(b64)
        out = cp.empty((n, n), a.dtype)
        calls = [(lambda kind=kind: kind.run(a, b, out), sync, None, clock) for kind in group]
        labels = [kind.name for kind in group]
        if name == "fp32":
            calls.append((lambda: cp.matmul(a, b, out=out), sync, None, clock))
            labels.append("cupy (cuBLAS SGEMM)")
        peer = torch_peer(cp, name, a, b)
        if peer is not None:
            calls.append((peer, sync, None, clock))
            labels.append(f"torch {name}")
        times = measure_together(calls, repeats=args.repeats)
        base = times[-1].median if len(times) > len(group) else None
        for label, t in zip(labels, times):
            row = {"row": name, "impl": label, "ms": t.median * 1e3, "tflops": flops / t.median / 1e12,
                   "vs_peer": None if base is None else base / t.median}
            rows.append(row)
            ratio = "" if base is None else f"   {row['vs_peer']:.2f}x the last peer's speed"
            print(f"  {name:5s} {label:30s} {row['ms']:9.2f} ms {row['tflops']:7.1f} TFLOP/s{ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": props["name"].decode(), "size": n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
