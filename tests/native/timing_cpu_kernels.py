"""Quick timing of the tilegrad._cpu kernels against NumPy (the reference kernels) and PyTorch
CPU, in one process so the three share the machine's state. Not a test (pytest does not collect
it); the project's bench lives in tilegrad.bench.

    python tests/native/timing_cpu_kernels.py [--repeats 30] [--only softmax,gelu,...]

Prints the median time of each case and the GB/s equivalent (bytes read + written once; for the
conv cases the column is GFLOP/s divided by 10). The
native kernels run with a preallocated output ("native") and through the cpu backend, which
allocates its output per call ("native+alloc"). PyTorch runs with as many threads as OpenMP.
"""
import argparse
import os
import statistics
import time

import numpy as np

from tilegrad import _cpu
from tilegrad.backends import cpu as cpu_backend
from tilegrad.backends import reference

try:
    import torch
except ImportError:  # PyTorch is a bench-only peer
    torch = None


def median_time(fn, repeats):
    fn()  # warm up (page faults, thread pool)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases(rng):
    """(group, label, bytes moved, {peer: callable})."""
    out = []
    big = rng.standard_normal((4096, 4096), dtype=np.float32)
    gy = rng.standard_normal(big.shape, dtype=np.float32)
    buf = np.empty_like(big)
    tb, tgy = (torch.from_numpy(big), torch.from_numpy(gy)) if torch else (None, None)
    for dim in (1, 0):
        for name in ("softmax", "log_softmax"):
            native = getattr(_cpu, name)
            y = cpu_backend.KERNELS[name](big, dim)
            ty = torch.from_numpy(y) if torch else None
            fns = {
                "native": lambda n=native, d=dim: n(big, d, buf),
                "native+alloc": lambda n=name, d=dim: cpu_backend.KERNELS[n](big, d),
                "numpy": lambda n=name, d=dim: reference.KERNELS[n](big, d),
            }
            if torch:
                fns["torch"] = lambda n=name, d=dim: getattr(torch, n)(tb, d)
            out.append(("softmax", f"{name} 4096x4096 dim={dim}", 2 * big.nbytes, fns))
            bname = name + "_backward"
            fns = {
                "native": lambda n=bname, d=dim, y=y: getattr(_cpu, n)(y, gy, d, buf),
                "numpy": lambda n=bname, d=dim, y=y: reference.KERNELS[n](y, gy, d),
            }
            if torch:
                back = torch._softmax_backward_data if name == "softmax" else torch._log_softmax_backward_data
                fns["torch"] = lambda d=dim, b=back, g=tgy, t=ty: b(g, t, d, torch.float32)
            out.append(("softmax", f"{bname} 4096x4096 dim={dim}", 3 * big.nbytes, fns))

    n = 1 << 24
    x = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    o = np.empty_like(x)
    tx, tg = (torch.from_numpy(x), torch.from_numpy(g)) if torch else (None, None)
    to = torch.from_numpy(o) if torch else None
    F = torch.nn.functional if torch else None
    out.append(("copy", "copy 16M", 2 * x.nbytes, {
        "native": lambda: np.copyto(o, x), **({"torch": lambda: to.copy_(tx)} if torch else {})}))
    acts = [
        ("relu", lambda: _cpu.relu(x, o), lambda: reference.relu(x), lambda: torch.relu(tx)),
        ("sigmoid", lambda: _cpu.sigmoid(x, o), lambda: reference.sigmoid(x), lambda: torch.sigmoid(tx, out=to)),
        ("tanh", lambda: _cpu.tanh(x, o), lambda: reference.tanh(x), lambda: torch.tanh(tx, out=to)),
        ("gelu", lambda: _cpu.gelu(x, "none", o), lambda: reference.KERNELS["gelu"](x, "none"),
         lambda: F.gelu(tx)),
        ("gelu tanh", lambda: _cpu.gelu(x, "tanh", o), lambda: reference.KERNELS["gelu"](x, "tanh"),
         lambda: F.gelu(tx, approximate="tanh")),
        ("silu", lambda: _cpu.silu(x, o), lambda: reference.KERNELS["silu"](x), lambda: F.silu(tx)),
        ("leaky_relu", lambda: _cpu.leaky_relu(x, 0.01, o), lambda: reference.KERNELS["leaky_relu"](x, 0.01),
         lambda: F.leaky_relu(tx, 0.01)),
    ]
    for name, nat, ref, tor in acts:
        fns = {"native": nat, "numpy": ref}
        if torch:
            fns["torch"] = tor
        out.append(("act", f"{name} 16M", 2 * x.nbytes, fns))
    bwd = [
        ("sigmoid_backward", lambda: _cpu.sigmoid_backward(x, g, o), lambda: reference.sigmoid_backward(x, g),
         lambda: torch.ops.aten.sigmoid_backward(tg, tx)),
        ("tanh_backward", lambda: _cpu.tanh_backward(x, g, o), lambda: reference.tanh_backward(x, g),
         lambda: torch.ops.aten.tanh_backward(tg, tx)),
        ("gelu_backward", lambda: _cpu.gelu_backward(x, g, "none", o),
         lambda: reference.KERNELS["gelu_backward"](x, g, "none"),
         lambda: torch.ops.aten.gelu_backward(tg, tx)),
        ("silu_backward", lambda: _cpu.silu_backward(x, g, o), lambda: reference.KERNELS["silu_backward"](x, g),
         lambda: torch.ops.aten.silu_backward(tg, tx)),
    ]
    for name, nat, ref, tor in bwd:
        fns = {"native": nat, "numpy": ref}
        if torch:
            fns["torch"] = tor
        out.append(("act", f"{name} 16M", 3 * x.nbytes, fns))

    for rows, cols in ((8192, 1024), (2048, 4096)):
        lx = rng.standard_normal((rows, cols), dtype=np.float32)
        lw = rng.standard_normal(cols, dtype=np.float32)
        lb = rng.standard_normal(cols, dtype=np.float32)
        lg = rng.standard_normal((rows, cols), dtype=np.float32)
        ly = np.empty_like(lx)
        m = np.empty((rows, 1), np.float32)
        r = np.empty((rows, 1), np.float32)
        _cpu.layer_norm(lx, lw, lb, 1, 1e-5, ly, m, r)
        gx, gw, gb = np.empty_like(lx), np.empty_like(lw), np.empty_like(lb)
        fns = {"native": lambda: _cpu.layer_norm(lx, lw, lb, 1, 1e-5, ly, m, r),
               "numpy": lambda: reference.KERNELS["layer_norm"](lx, lw, lb, 1, 1e-5)}
        bfns = {"native": lambda: _cpu.layer_norm_backward(lx, lw, m, r, lg, 1, gx, gw, gb),
                "numpy": lambda: reference.KERNELS["layer_norm_backward"](lx, lw, m, r, lg, 1)}
        if torch:
            tlx, tlw, tlb, tlg = (torch.from_numpy(a) for a in (lx, lw, lb, lg))
            tm, tr = torch.from_numpy(m.reshape(rows, 1)), torch.from_numpy(r.reshape(rows, 1))
            fns["torch"] = lambda: torch.native_layer_norm(tlx, (cols,), tlw, tlb, 1e-5)
            bfns["torch"] = lambda: torch.ops.aten.native_layer_norm_backward(
                tlg, tlx, (cols,), tm, tr, tlw, tlb, [True, True, True])
        out.append(("layer_norm", f"layer_norm {rows}x{cols}", 2 * lx.nbytes, fns))
        out.append(("layer_norm", f"layer_norm_backward {rows}x{cols}", 3 * lx.nbytes, bfns))
    for xs, ws, pad in (((16, 64, 56, 56), (64, 64, 3, 3), 1), ((64, 3, 32, 32), (32, 3, 3, 3), 1),
                        ((16, 256, 14, 14), (256, 256, 1, 1), 0)):
        cx = rng.standard_normal(xs, dtype=np.float32)
        cw = rng.standard_normal(ws, dtype=np.float32)
        oh = xs[2] + 2 * pad - ws[2] + 1
        co = np.empty((xs[0], ws[0], oh, oh), np.float32)
        geo = ((1, 1), (pad, pad), (1, 1), 1)
        fns = {"native": lambda cx=cx, cw=cw, co=co, g=geo: _cpu.conv2d(cx, cw, *g, co),
               "numpy": lambda cx=cx, cw=cw, g=geo: reference.KERNELS["conv2d"](cx, cw, *g)}
        if torch:
            tcx, tcw = torch.from_numpy(cx), torch.from_numpy(cw)
            fns["torch"] = lambda tcx=tcx, tcw=tcw, pad=pad: F.conv2d(tcx, tcw, padding=pad)
        flops = 2 * co.size * ws[1] * ws[2] * ws[3]
        # bytes: x, w read and y written once; the report's GB/s column then reads as GFLOP/s / 10
        out.append(("conv", f"conv2d x{xs} w{ws} ({flops / 1e9:.2f} GFLOP)", flops / 10, fns))
        cgy = rng.standard_normal(co.shape, dtype=np.float32)
        cgx, cgw = np.empty_like(cx), np.empty_like(cw)
        for which, nat, ref_fn, mask in (
                ("input", lambda cgy=cgy, cw=cw, cgx=cgx, g=geo: _cpu.conv2d_backward_input(cgy, cw, *g, cgx),
                 lambda cgy=cgy, cw=cw, xs=xs, g=geo: reference.KERNELS["conv2d_backward_input"](cgy, cw, xs, *g),
                 [True, False, False]),
                ("weight", lambda cgy=cgy, cx=cx, cgw=cgw, g=geo: _cpu.conv2d_backward_weight(cgy, cx, *g, cgw),
                 lambda cgy=cgy, cx=cx, ws=ws, g=geo: reference.KERNELS["conv2d_backward_weight"](cgy, cx, ws, *g),
                 [False, True, False])):
            fns = {"native": nat, "numpy": ref_fn}
            if torch:
                tcgy = torch.from_numpy(cgy)
                fns["torch"] = lambda g=tcgy, tcx=tcx, tcw=tcw, pad=pad, m=mask: torch.ops.aten.convolution_backward(
                    g, tcx, tcw, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, m)
            out.append(("conv", f"conv2d_backward_{which} x{xs} w{ws}", flops / 10, fns))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", default="", help="comma-separated groups: softmax,act,copy,layer_norm,conv")
    args = ap.parse_args()
    threads = _cpu.num_threads()
    if torch:
        torch.set_num_threads(threads)
    print(f"isa={_cpu.isa()} threads={threads} torch={torch.__version__ if torch else None} "
          f"numpy={np.__version__} load={os.getloadavg()[0]:.2f} repeats={args.repeats}")
    only = set(filter(None, args.only.split(",")))
    for group, label, nbytes, fns in cases(np.random.default_rng(0)):
        if only and group not in only:
            continue
        times = {k: median_time(f, args.repeats) for k, f in fns.items()}
        cells = "  ".join(f"{k} {t * 1e3:7.2f} ms {nbytes / t / 1e9:5.1f} GB/s" for k, t in times.items())
        ratios = "  ".join(f"x{times[p] / times['native']:.2f} vs {p}" for p in ("numpy", "torch") if p in times)
        print(f"{label:38s} {cells}  | {ratios}", flush=True)


if __name__ == "__main__":
    main()
