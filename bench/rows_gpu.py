"""GPU bandwidth of tilegrad's memory-bound kernels (softmax / log_softmax, the activations,
layer_norm; forward and backward) against a device-to-device copy and PyTorch, in one process,
at 16M+ elements (the issue's row: >= 3.5 TB/s effective; a copy measures about 4.3 on an H200).
On a GPU machine, after building with CUDA:

    PYTHONPATH=pkg python bench/rows_gpu.py [--rows 16384] [--cols 1024] [--repeats 20] [--json F]

Effective bandwidth counts each array read or written once (softmax forward: x in, y out; its
backward: y, gy in, gx out; layer_norm forward: x in, y out, plus the per-row statistics).
Every kernel is first checked against the reference kernels on CuPy in float64 (a wrong one is
reported and not timed); times are medians of CUDA-event samples.
"""
import argparse
import json

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json")
    return p.parse_args()


def cases(cp, _cuda, ref, x, gy, stream):
    """(name, bytes moved, tilegrad call, float64 check, torch call maker)."""
    rows, cols = x.shape
    y, gx = cp.empty_like(x), cp.empty_like(x)
    mean, rstd = cp.empty((rows, 1), cp.float32), cp.empty((rows, 1), cp.float32)
    w, b = cp.ones(cols, cp.float32) * 1.5, cp.zeros(cols, cp.float32) + 0.25
    sm = ref["softmax"](x.astype(cp.float64), -1).astype(cp.float32)
    nbytes = x.nbytes
    out = [
        ("copy", 2 * nbytes, lambda: cp.copyto(y, x), None, lambda t, tx, tg: (lambda: t.clone(tx))),
        ("softmax", 2 * nbytes, lambda: _cuda.softmax(x, -1, y, stream=stream()),
         lambda: (y, ref["softmax"](x.astype(cp.float64), -1)), lambda t, tx, tg: (lambda: t.softmax(tx, -1))),
        ("log_softmax", 2 * nbytes, lambda: _cuda.log_softmax(x, -1, y, stream=stream()),
         lambda: (y, ref["log_softmax"](x.astype(cp.float64), -1)), lambda t, tx, tg: (lambda: t.log_softmax(tx, -1))),
        ("softmax_backward", 3 * nbytes, lambda: _cuda.softmax_backward(sm, gy, -1, gx, stream=stream()),
         lambda: (gx, ref["softmax_backward"](sm.astype(cp.float64), gy.astype(cp.float64), -1)),
         lambda t, tx, tg: (lambda: t._softmax_backward_data(tg, tx, -1, t.float32))),
        ("layer_norm", 2 * nbytes + 8 * rows,
         lambda: _cuda.layer_norm(x, w, b, 1, 1e-5, y, mean, rstd, stream=stream()),
         lambda: (y, ref["layer_norm"](x.astype(cp.float64), w.astype(cp.float64), b.astype(cp.float64), 1, 1e-5)[0]),
         lambda t, tx, tg: (lambda: t.nn.functional.layer_norm(tx, (cols,), t.as_tensor(w), t.as_tensor(b)))),
    ]
    for act in ("relu", "sigmoid", "tanh", "silu"):
        fn = getattr(_cuda, act)
        out.append((act, 2 * nbytes, lambda fn=fn: fn(x, y, stream=stream()),
                    lambda act=act: (y, ref[act](x.astype(cp.float64))),
                    lambda t, tx, tg, act=act: (lambda: getattr(t, act)(tx) if act != "silu"
                                                else t.nn.functional.silu(tx))))
    out.append(("gelu", 2 * nbytes, lambda: _cuda.gelu(x, "none", y, stream=stream()),
                lambda: (y, ref["gelu"](x.astype(cp.float64), "none")),
                lambda t, tx, tg: (lambda: t.nn.functional.gelu(tx))))
    out.append(("gelu_backward", 3 * nbytes, lambda: _cuda.gelu_backward(x, gy, "none", gx, stream=stream()),
                lambda: (gx, ref["gelu_backward"](x.astype(cp.float64), gy.astype(cp.float64), "none")), None))
    return out


def main():
    args = parse_args()
    import cupy as cp
    from tilegrad import _cuda
    from tilegrad.backends import reference
    from tilegrad.bench.timing import cuda_event_clock, measure_together
    try:
        import torch
        torch = torch if torch.cuda.is_available() else None
    except ImportError:
        torch = None
    props = cp.cuda.runtime.getDeviceProperties(0)
    print(f"{props['name'].decode()}; {args.rows} x {args.cols} float32 ({args.rows * args.cols / 2**20:.0f}M "
          f"elements), medians of {args.repeats}")
    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal((args.rows, args.cols), np.float32))
    gy = cp.asarray(rng.standard_normal((args.rows, args.cols), np.float32))
    stream = lambda: cp.cuda.get_current_stream().ptr  # noqa: E731
    sync = cp.cuda.get_current_stream().synchronize
    clock = cuda_event_clock(cp.cuda.Event, sync)
    tx = torch.as_tensor(x, device="cuda") if torch else None
    tg = torch.as_tensor(gy, device="cuda") if torch else None
    rows = []
    for name, nbytes, run, want, torch_call in cases(cp, _cuda, reference.KERNELS, x, gy, stream):
        if want is not None:
            run()
            got, expected = want()
            err = float((cp.abs(got - expected) / (cp.abs(expected) + 1e-3)).max())
            if not err < 1e-3:
                print(f"  {name}: off by {err:.2e} relative; not timed")
                continue
        calls = [(run, sync, None, clock)]
        if torch is not None and torch_call is not None:
            calls.append((torch_call(torch, tx, tg), sync, None, clock))
        times = measure_together(calls, repeats=args.repeats)
        ours = nbytes / times[0].median / 1e12
        peer = nbytes / times[1].median / 1e12 if len(times) > 1 else None
        rows.append({"kernel": name, "ms": times[0].median * 1e3, "tbps": ours, "torch_tbps": peer})
        peer_text = "" if peer is None else f"   torch {peer:5.2f} TB/s ({ours / peer:.2f}x its speed)"
        print(f"  {name:18s} {times[0].median * 1e3:8.3f} ms {ours:5.2f} TB/s{peer_text}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": props["name"].decode(), "shape": [args.rows, args.cols], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
