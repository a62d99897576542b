"""Timing of the tilegrad._cuda conv2d and pooling kernels on a GPU machine against PyTorch
(cuDNN) and the reference kernels on CuPy, in one process, ResNet-style layers at batch 64. Not
a test (pytest does not collect it); the project's bench lives in tilegrad.bench.

    python tests/native/timing_cuda_conv.py [--repeats 20] [--batch 64] [--only conv,pool]

Every implementation is checked against PyTorch's float32 result before it is timed (a wrong
one is reported, not timed). Times are medians of CUDA-event samples on the stream each
implementation launches on. Each conv layer is also timed as Conv2d + bias + ReLU ("forward+bias+relu"):
tilegrad's fused epilogue (bias and ReLU applied as the conv stores its output; "native-2pass" is
the float32 conv then the separate bias_act pass, for comparison) against PyTorch's cuDNN conv
with its bias, then relu. PyTorch runs twice: in true float32 ("torch-fp32", TF32 off) and
with its defaults ("torch", where cuDNN may use TF32 tensor cores for convolutions); the ratio
columns are each time over torch-fp32's and over torch's. "native" calls tilegrad._cuda's float32
kernels (version 1) with preallocated outputs, "tf32" its TF32 tensor-core kernels (version 2),
"backend" and "backend-tf32" go through tilegrad.backends.cuda (CuPy allocations, the weight
gradient's workspace included) under set_float32_matmul_precision("highest") and ("high"),
"reference" is the reference kernels on CuPy. A last table sums each layer's forward and both
backwards: tilegrad's TF32 kernels against PyTorch with TF32 (the issue's goal is >= 0.7x
PyTorch's speed for ResNet's 3x3 layers at batch 64 on an H200).
"""
import argparse
import contextlib
from collections import defaultdict

import numpy as np

import cupy as cp
import tilegrad
from tilegrad import _cuda
from tilegrad.backends import cuda as cuda_backend
from tilegrad.backends import reference
from tilegrad.backends.native import conv_geometry, pool_geometry
from tilegrad.bench.timing import cuda_event_clock, measure_together

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is a timing-only peer
    torch = None

REF = reference.KERNELS
K = cuda_backend.KERNELS


def conv_layers(batch):
    """(label, x shape, w shape, stride, padding): the 3x3 convolutions of ResNet's stages, its
    stem and a strided 1x1 projection."""
    return [
        ("stem 7x7/2", (batch, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3)),
        ("3x3 64@56", (batch, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1)),
        ("3x3 128@28", (batch, 128, 28, 28), (128, 128, 3, 3), (1, 1), (1, 1)),
        ("3x3 256@14", (batch, 256, 14, 14), (256, 256, 3, 3), (1, 1), (1, 1)),
        ("3x3 512@7", (batch, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1)),
        ("3x3/2 64->128", (batch, 64, 56, 56), (128, 64, 3, 3), (2, 2), (1, 1)),
        ("1x1/2 256->512", (batch, 256, 14, 14), (512, 256, 1, 1), (2, 2), (0, 0)),
    ]


def stream_ptr():
    return cp.cuda.get_current_stream().ptr


def conv_cases(rng, batch):
    """(label, flops, {impl: (callable, None or the callable's result)}) per layer and direction."""
    return [case for layer in conv_layers(batch) for case in conv_layer_cases(rng, *layer)]


def conv_layer_cases(rng, label, xs, ws, s, p):
    """One function per layer, so that each layer's closures see its own arrays."""
    out = []
    d, g = (1, 1), 1
    ys = conv_geometry(xs, ws, s, p, d, g)[3]
    x, w, gy = (cp.asarray(rng.standard_normal(shape, dtype=np.float32)) for shape in (xs, ws, ys))
    y, gx, gw = cp.empty(ys, cp.float32), cp.empty(xs, cp.float32), cp.empty(ws, cp.float32)
    ws_need = _cuda.conv2d_backward_weight_workspace(xs, ws, s, p, d, g)
    scratch = cp.empty(ws_need, cp.float32) if ws_need else None
    ws_need2 = _cuda.conv2d_backward_weight_workspace(xs, ws, s, p, d, g, version=2)
    scratch2 = cp.empty(ws_need2, cp.float32) if ws_need2 else None
    y2, gx2, gw2 = cp.empty(ys, cp.float32), cp.empty(xs, cp.float32), cp.empty(ws, cp.float32)
    flops = 2.0 * int(np.prod(ys)) * ws[1] * ws[2] * ws[3]
    natives = {
        "forward": (lambda: _cuda.conv2d(x, w, s, p, d, g, y, stream=stream_ptr()), lambda: y),
        "backward input": (lambda: _cuda.conv2d_backward_input(gy, w, s, p, d, g, gx, stream=stream_ptr()),
                           lambda: gx),
        "backward weight": (lambda: _cuda.conv2d_backward_weight(gy, x, s, p, d, g, gw, stream=stream_ptr(),
                                                                 workspace=scratch), lambda: gw),
    }
    tf32s = {
        "forward": (lambda: _cuda.conv2d(x, w, s, p, d, g, y2, stream=stream_ptr(), version=2), lambda: y2),
        "backward input": (lambda: _cuda.conv2d_backward_input(gy, w, s, p, d, g, gx2, stream=stream_ptr(),
                                                               version=2), lambda: gx2),
        "backward weight": (lambda: _cuda.conv2d_backward_weight(gy, x, s, p, d, g, gw2, stream=stream_ptr(),
                                                                 workspace=scratch2, version=2), lambda: gw2),
    }
    backend = {
        "forward": lambda: K["conv2d"](x, w, s, p, d, g),
        "backward input": lambda: K["conv2d_backward_input"](gy, w, xs, s, p, d, g),
        "backward weight": lambda: K["conv2d_backward_weight"](gy, x, ws, s, p, d, g),
    }
    refs = {
        "forward": lambda: REF["conv2d"](x, w, s, p, d, g),
        "backward input": lambda: REF["conv2d_backward_input"](gy, w, xs, s, p, d, g),
        "backward weight": lambda: REF["conv2d_backward_weight"](gy, x, ws, s, p, d, g),
    }
    peers = {}
    if torch is not None:
        tx, tw, tgy = (torch.as_tensor(a, device="cuda") for a in (x, w, gy))
        peers = {
            "forward": lambda: F.conv2d(tx, tw, None, s, p, d, g),
            "backward input": lambda: torch.nn.grad.conv2d_input(xs, tw, tgy, s, p, d, g),
            "backward weight": lambda: torch.nn.grad.conv2d_weight(tx, ws, tgy, s, p, d, g),
        }
    for direction in natives:
        call, result = natives[direction]
        impls = {"native": (call, result), "tf32": tf32s[direction], "backend": (backend[direction], None),
                 "backend-tf32": (backend[direction], None), "reference": (refs[direction], None)}
        if peers:
            impls["torch-fp32"] = (peers[direction], None)
            impls["torch"] = (peers[direction], None)
        out.append((f"conv {label} {direction}", flops, impls))
    out.append(fused_case(label, x, w, s, p, d, g, ys, flops))
    return out


def fused_case(label, x, w, s, p, d, g, ys, flops):
    """relu(conv(x, w) + b): the fused epilogue against the two-pass one and cuDNN conv + bias + relu."""
    b = cp.asarray(np.random.default_rng(1).standard_normal(w.shape[0], dtype=np.float32))
    y, y2, y_two = (cp.empty(ys, cp.float32) for _ in range(3))

    def two_pass():
        _cuda.conv2d(x, w, s, p, d, g, y_two, stream=stream_ptr())
        _cuda.bias_act(y_two, b, 1, "relu", stream=stream_ptr())

    backend = (lambda: K["conv2d_bias_act"](x, w, b, s, p, d, g, "relu"), None)
    impls = {
        "native": (lambda: _cuda.conv2d(x, w, s, p, d, g, y, stream=stream_ptr(), bias=b, activation="relu"),
                   lambda: y),
        "native-2pass": (two_pass, lambda: y_two),
        "tf32": (lambda: _cuda.conv2d(x, w, s, p, d, g, y2, stream=stream_ptr(), version=2, bias=b,
                                      activation="relu"), lambda: y2),
        "backend": backend, "backend-tf32": backend,
        "reference": (lambda: REF["conv2d_bias_act"](x, w, b, s, p, d, g, "relu"), None),
    }
    if torch is not None:
        tx, tw, tb = (torch.as_tensor(a, device="cuda") for a in (x, w, b))
        impls["torch-fp32"] = impls["torch"] = (lambda: F.relu(F.conv2d(tx, tw, tb, s, p, d, g)), None)
    return f"conv {label} forward+bias+relu", flops, impls


def pool_cases(rng, batch, image=(64, 112, 112)):
    """ResNet's stem max pool and a 2x2 average pool on (batch,) + image, both directions."""
    xs = (batch,) + image
    x = cp.asarray(rng.standard_normal(xs, dtype=np.float32))
    tx = torch.as_tensor(x, device="cuda").requires_grad_(True) if torch is not None else None
    return pool_window_cases(rng, x, tx, "max 3x3/2", (3, 3), (2, 2), (1, 1)) + \
        pool_window_cases(rng, x, tx, "avg 2x2/2", (2, 2), (2, 2), (0, 0))


def pool_window_cases(rng, x, tx, label, k, s, p):
    xs = x.shape
    ys = pool_geometry(xs, k, s, p, (1, 1), False)[4]
    gy = cp.asarray(rng.standard_normal(ys, dtype=np.float32))
    y, gx = cp.empty(ys, cp.float32), cp.empty(xs, cp.float32)
    if label.startswith("max"):
        arg = cp.empty(ys, cp.int64)
        _cuda.max_pool2d(x, k, s, p, (1, 1), False, y, arg, stream=stream_ptr())  # arg for the backward
        ref_arg = REF["max_pool2d"](x, k, s, p, (1, 1), False)[1]
        native = {"forward": lambda: _cuda.max_pool2d(x, k, s, p, (1, 1), False, y, arg, stream=stream_ptr()),
                  "backward": lambda: _cuda.max_pool2d_backward(gy, arg, k, s, p, (1, 1), False, gx,
                                                                stream=stream_ptr())}
        ref = {"forward": lambda: REF["max_pool2d"](x, k, s, p, (1, 1), False)[0],
               "backward": lambda: REF["max_pool2d_backward"](gy, ref_arg, xs, k, s, p, (1, 1), False)}
        torch_pool = (lambda t: F.max_pool2d(t, k, s, p))
    else:
        native = {"forward": lambda: _cuda.avg_pool2d(x, k, s, p, False, True, None, y, stream=stream_ptr()),
                  "backward": lambda: _cuda.avg_pool2d_backward(gy, k, s, p, False, True, None, gx,
                                                                stream=stream_ptr())}
        ref = {"forward": lambda: REF["avg_pool2d"](x, k, s, p, False, True, None),
               "backward": lambda: REF["avg_pool2d_backward"](gy, xs, k, s, p, False, True, None)}
        torch_pool = (lambda t: F.avg_pool2d(t, k, s, p))
    peer = {}
    if torch is not None:
        ty, tgy = torch_pool(tx), torch.as_tensor(gy, device="cuda")
        peer = {"forward": lambda: torch_pool(tx.detach()),
                "backward": lambda: torch.autograd.grad(ty, tx, tgy, retain_graph=True)[0]}
    cells = float(np.prod(ys)) * k[0] * k[1]
    out = []
    for direction, result in (("forward", y), ("backward", gx)):
        impls = {"native": (native[direction], lambda r=result: r), "reference": (ref[direction], None)}
        if peer:
            impls["torch-fp32"] = (peer[direction], None)
        out.append((f"pool {label} {direction}", cells, impls))
    return out


def as_numpy(r):
    if torch is not None and isinstance(r, torch.Tensor):
        return r.detach().cpu().numpy()
    return cp.asnumpy(r)


@contextlib.contextmanager
def tf32(enabled):
    if torch is None:
        yield
        return
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def tilegrad_precision(precision):
    old = tilegrad.get_float32_matmul_precision()
    tilegrad.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        tilegrad.set_float32_matmul_precision(old)


def context_of(impl):
    if impl.startswith("torch"):
        return lambda: tf32(impl != "torch-fp32")
    if impl.startswith("backend"):
        return lambda: tilegrad_precision("high" if impl == "backend-tf32" else "highest")
    return None


TF32_IMPLS = ("torch", "tf32", "backend-tf32")  # results within TF32 rounding
DIRECTIONS = ("forward", "backward input", "backward weight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", default="conv,pool", help="comma-separated: conv, pool")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    groups = args.only.split(",")
    cases = (conv_cases(rng, args.batch) if "conv" in groups else []) + \
        (pool_cases(rng, args.batch) if "pool" in groups else [])
    cupy_clock = cuda_event_clock(cp.cuda.Event, cp.cuda.Device().synchronize)
    torch_clock = cuda_event_clock(lambda: torch.cuda.Event(enable_timing=True), torch.cuda.synchronize) \
        if torch is not None else None
    print(f"{'case':42s} {'impl':12s} {'ms':>9s} {'TFLOP/s':>8s} {'vs torch-fp32':>13s} {'vs torch':>9s}")
    layer_times = defaultdict(dict)  # conv layer -> {(impl, direction): median seconds}
    for label, work, impls in cases:
        # Check every implementation against PyTorch's float32 result (or the reference's).
        base = "torch-fp32" if "torch-fp32" in impls else "reference"
        with tf32(False):
            want = as_numpy(impls[base][0]()).astype(np.float64)
        scale = np.abs(want).max() + 1e-30
        calls, names = [], []
        for name, (fn, result) in impls.items():
            ctx = context_of(name)
            with (ctx or contextlib.nullcontext)():
                got = fn()
            got = as_numpy(result() if result is not None else got)
            err = np.abs(got.astype(np.float64) - want).max() / scale
            limit = 5e-3 if name in TF32_IMPLS else 1e-4  # TF32 keeps 10 mantissa bits
            if not err <= limit:
                print(f"{label:42s} {name:11s} WRONG: max error {err:.3g} of the largest value")
                continue
            sync = torch.cuda.synchronize if name.startswith("torch") else cp.cuda.Device().synchronize
            calls.append((fn, sync, context_of(name), torch_clock if name.startswith("torch") else cupy_clock))
            names.append(name)
        timings = dict(zip(names, measure_together(calls, repeats=args.repeats)))
        peer, peer_tf32 = timings.get("torch-fp32"), timings.get("torch")
        for name, t in timings.items():
            ratio = f"{t.median / peer.median:12.2f}x" if peer else ""
            ratio_tf32 = f"{t.median / peer_tf32.median:8.2f}x" if peer_tf32 else ""
            rate = f"{work / t.median / 1e12:8.2f}" if label.startswith("conv") else ""
            print(f"{label:42s} {name:12s} {t.median * 1e3:9.3f} {rate:>8s} {ratio:>13s} {ratio_tf32:>9s}")
            for direction in DIRECTIONS:  # labels are "conv <layer> <direction>"
                if label.startswith("conv ") and label.endswith(" " + direction):
                    layer_times[label[5:-len(direction) - 1]][(name, direction)] = t.median
    print_layer_totals(layer_times)


def print_layer_totals(layer_times):
    """Forward + input gradient + weight gradient per conv layer: TF32 tilegrad against TF32
    PyTorch (speed = torch's time over tilegrad's; the goal is >= 0.7)."""
    print(f"\n{'layer (fwd + both bwd)':30s} {'tf32 ms':>9s} {'native ms':>10s} {'torch ms':>9s}"
          f" {'speed vs torch':>15s}")
    for layer, t in layer_times.items():
        total = {impl: sum(t[(impl, d)] for d in DIRECTIONS) if all((impl, d) in t for d in DIRECTIONS) else None
                 for impl in ("tf32", "native", "torch")}
        fmt = (lambda v, width: f"{v * 1e3:{width}.3f}" if v is not None else f"{'-':>{width}s}")
        speed = f"{total['torch'] / total['tf32']:14.2f}x" if total["tf32"] and total["torch"] else ""
        print(f"{layer:30s} {fmt(total['tf32'], 9)} {fmt(total['native'], 10)} {fmt(total['torch'], 9)} {speed:>15s}")


if __name__ == "__main__":
    main()
