"""GPU timing of tilegrad's scaled dot-product attention kernels (float32) against PyTorch's
scaled_dot_product_attention and a materialised CuPy softmax, at B4 H16 S4096 D128 by default,
causal and not, forward and forward+backward. On a GPU machine, after building with CUDA:

    PYTHONPATH=pkg python bench/attention_gpu.py [--shape B,H,S,D] [--repeats N] [--versions 1,2]
    PYTHONPATH=pkg python bench/attention_gpu.py --dtype bfloat16     # the tensor-core kernels (v4, v3)

Every kernel is first checked against a float64 reference on a smaller problem (B1 H2 S333 of the
same D), then timed with CUDA events: the median of N runs after a warm-up, in ms, with TFLOP/s
counted as 4 B H L S D for the forward and 2.5 times that for the backward (halved under
is_causal), FlashAttention's convention. PyTorch runs if it is installed with CUDA; its float32
SDPA uses TF32 matmuls only if allowed, which this script does not allow. With --dtype float16
or bfloat16 (the issue's row: B4 H16 S4096 D128) the tensor-core kernels are timed against
PyTorch's SDPA on the same data (its flash backend for these dtypes): v4, the default (the
pipelined forward), and v3 (the earlier forward); both run the same backward.
"""
import argparse
import math

import numpy as np

import bfloat16_bits  # bench/, the script's own folder


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="4,16,4096,128", help="B,H,S,D (L = S)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--versions", default="2", help="float32 kernel versions to time (1 is slow)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    return p.parse_args()


def time_ms(cp, fn, repeats):
    fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def tilegrad_fns(cp, _cuda, q, k, v, causal, version=0, dtype="float32"):
    """forward and forward+backward of the kernels on (B, L, D) arrays of `dtype` (float32, or
    the 16-bit inputs of the tensor-core kernels: see to_bits)."""
    B, L, D = q.shape
    scale = 1 / math.sqrt(D)
    out, lse = cp.empty_like(q), cp.empty((B, L), cp.float32)
    gout = to_bits(cp, cp.asarray(np.random.default_rng(1).standard_normal(q.shape, np.float32)), dtype)
    gq, gk, gv, delta = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v), cp.empty((B, L), cp.float32)
    stream = cp.cuda.get_current_stream().ptr

    def forward():
        _cuda.sdpa_forward(q, k, v, None, causal, scale, out, lse, stream=stream, version=version, dtype=dtype)

    def both():
        forward()
        _cuda.sdpa_backward(q, k, v, None, causal, scale, out, lse, gout, delta, gq, gk, gv, stream=stream,
                            version=version, dtype=dtype)
    return forward, both, (out, gq, gk, gv), gout


def reference(cp, q, k, v, causal, gout):
    """Materialised float64 softmax attention on the GPU: out, gq, gk, gv."""
    q, k, v, gout = (a.astype(cp.float64) for a in (q, k, v, gout))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    if causal:
        s = cp.where(cp.tril(cp.ones(s.shape[-2:], bool)), s, -cp.inf)
    p = cp.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dp = gout @ v.transpose(0, 2, 1)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True)) / math.sqrt(q.shape[-1])
    return p @ v, ds @ k, ds.transpose(0, 2, 1) @ q, p.transpose(0, 2, 1) @ gout


def check(cp, _cuda, version, causal, D):
    rng = np.random.default_rng(0)
    q, k, v = (cp.asarray(rng.standard_normal((2, 333, D), np.float32)) for _ in range(3))
    _, both, got, gout = tilegrad_fns(cp, _cuda, q, k, v, causal, version)
    both()
    for name, g, w in zip(("out", "gq", "gk", "gv"), got, reference(cp, q, k, v, causal, gout)):
        err = float(cp.abs(g - w).max() / max(1.0, float(cp.abs(w).max())))
        if not err < 1e-4:
            raise SystemExit(f"v{version} causal={causal}: {name} off by {err:.2e} (relative to its max); not timed")


def torch_fns(cp, q, k, v, causal, dtype="float32"):
    """PyTorch's SDPA on the same (B, H, S, D) data (its flash backend for the 16-bit dtypes;
    float32 without TF32)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False

    def as_torch(x):
        t = torch.as_tensor(x.view(cp.int16) if dtype == "bfloat16" else x, device="cuda")
        return (t.view(torch.bfloat16) if dtype == "bfloat16" else t).detach().requires_grad_(True)
    tq, tk, tv = (as_torch(a) for a in (q, k, v))
    gout = torch.randn_like(tq)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            sdpa(tq, tk, tv, is_causal=causal)

    def both():
        sdpa(tq, tk, tv, is_causal=causal).backward(gout)
    return forward, both


def to_bits(cp, x, dtype):
    """float32 CuPy array -> the kernels' input of `dtype`: float32, float16, or bfloat16 bits."""
    if dtype == "bfloat16":
        return bfloat16_bits.to_bits(cp, x)
    return x.astype(cp.float16 if dtype == "float16" else cp.float32)


def from_bits(cp, x, dtype):
    return bfloat16_bits.to_float32(cp, x) if dtype == "bfloat16" else x.astype(cp.float32)


def half_check(cp, _cuda, dtype, causal, D, version):
    """The 16-bit kernels against a float64 reference of the rounded inputs (B2 L333)."""
    rng = np.random.default_rng(0)
    q, k, v = (to_bits(cp, cp.asarray(rng.standard_normal((2, 333, D), np.float32)), dtype) for _ in range(3))
    _, both, got, gout = tilegrad_fns(cp, _cuda, q, k, v, causal, version, dtype=dtype)
    both()
    want = reference(cp, *(from_bits(cp, a, dtype) for a in (q, k, v)), causal, from_bits(cp, gout, dtype))
    tol = 1e-2 if dtype == "bfloat16" else 2e-3
    for name, g, w in zip(("out", "gq", "gk", "gv"), got, want):
        err = float(cp.abs(from_bits(cp, g, dtype) - w).max() / max(1.0, float(cp.abs(w).max())))
        if not err < tol:
            raise SystemExit(f"v{version} {dtype} causal={causal}: {name} off by {err:.2e} (relative to its max); not timed")


# The 16-bit kernel versions timed: v4 (the default: the pipelined forward) and v3 (the earlier
# forward); both run the same backward.
HALF_VERSIONS = (4, 3)


def half_main(cp, _cuda, args, B, H, S, D):
    rng = np.random.default_rng(0)
    for causal in (False, True):
        for version in HALF_VERSIONS:
            half_check(cp, _cuda, args.dtype, causal, D, version)
        q, k, v = (to_bits(cp, cp.asarray(rng.standard_normal((B * H, S, D), np.float32)), args.dtype)
                   for _ in range(3))
        flops = 4 * B * H * S * S * D / (2 if causal else 1)
        rows = []
        for version in HALF_VERSIONS:  # the default first
            forward, both, _, _ = tilegrad_fns(cp, _cuda, q, k, v, causal, version, dtype=args.dtype)
            rows.append((f"tilegrad v{version}", time_ms(cp, forward, args.repeats), time_ms(cp, both, args.repeats)))
        peer = torch_fns(cp, *(a.reshape(B, H, S, D) for a in (q, k, v)), causal, args.dtype)
        if peer is not None:
            rows.append(("torch sdpa", time_ms(cp, peer[0], args.repeats), time_ms(cp, peer[1], args.repeats)))
        print(f"causal={causal}")
        for name, fwd, both_ms in rows:
            bwd = both_ms - fwd
            print(f"  {name:14s} forward {fwd:8.2f} ms {flops / fwd / 1e9:6.1f} TFLOP/s   "
                  f"backward {bwd:8.2f} ms {2.5 * flops / bwd / 1e9:6.1f} TFLOP/s")
        if peer is not None:
            (_, f0, b0), (_, f1, b1) = rows[0], rows[-1]
            print(f"  tilegrad v{HALF_VERSIONS[0]} / torch: forward {f0 / f1:.2f}x, backward {(b0 - f0) / (b1 - f1):.2f}x time")


def main():
    args = parse_args()
    import cupy as cp
    from tilegrad import _cuda
    B, H, S, D = (int(n) for n in args.shape.split(","))
    if args.dtype != "float32":
        print(f"B{B} H{H} S{S} D{D} {args.dtype} on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
        return half_main(cp, _cuda, args, B, H, S, D)
    rng = np.random.default_rng(0)
    q, k, v = (cp.asarray(rng.standard_normal((B * H, S, D), np.float32)) for _ in range(3))
    print(f"B{B} H{H} S{S} D{D} float32 on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    for causal in (False, True):
        flops = 4 * B * H * S * S * D / (2 if causal else 1)
        rows = []
        for version in (int(n) for n in args.versions.split(",")):
            check(cp, _cuda, version, causal, D)
            forward, both, _, _ = tilegrad_fns(cp, _cuda, q, k, v, causal, version)
            rows.append((f"tilegrad v{version}", time_ms(cp, forward, args.repeats), time_ms(cp, both, args.repeats)))
        peer = torch_fns(cp, q.reshape(B, H, S, D), k.reshape(B, H, S, D), v.reshape(B, H, S, D), causal)
        if peer is not None:
            # PyTorch and CuPy both launch on the legacy default stream here, so CuPy's events time it.
            forward, both = peer
            rows.append(("torch sdpa", time_ms(cp, forward, args.repeats), time_ms(cp, both, args.repeats)))
        else:
            print("  (PyTorch with CUDA not found: no peer)")
        print(f"causal={causal}")
        for name, fwd, both in rows:
            bwd = both - fwd
            print(f"  {name:14s} forward {fwd:8.2f} ms {flops / fwd / 1e9:6.1f} TFLOP/s   "
                  f"backward {bwd:8.2f} ms {2.5 * flops / bwd / 1e9:6.1f} TFLOP/s")
        if peer is not None:
            base = rows[-1]
            for name, fwd, both in rows[:-1]:
                print(f"  {name} / torch: forward {fwd / base[1]:.2f}x, forward+backward {both / base[2]:.2f}x time")


if __name__ == "__main__":
    main()
