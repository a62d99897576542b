"""The CUDA row kernels (softmax.cu, layer_norm.cu) and the activations (activation.cu), in float32
and float16, executed on the CPU through tests/native/cuda_emu, against float64 references: their row layouts (a
thread, a warp or a block per row, the column path for inner dims), the shared reductions of
row_reduce.cuh and the vector/scalar activation paths run where no GPU exists. The GPU tests
(test_cuda_kernels.py) remain the word on the hardware. Slow: g++ builds the kernels."""
import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from tilegrad.backends import reference

from .cuda_emu import emulate

pytestmark = pytest.mark.slow

REF = reference.KERNELS
c_i64, c_int, c_float, c_ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {
    "tg_cuda_softmax": [c_int, c_ptr, c_ptr, c_i64, c_i64, c_i64, c_int, c_ptr],
    "tg_cuda_softmax_backward": [c_int, c_ptr, c_ptr, c_ptr, c_i64, c_i64, c_i64, c_int, c_ptr],
    "tg_cuda_layer_norm": [c_int] + [c_ptr] * 6 + [c_i64, c_i64, c_float, c_ptr],
    "tg_cuda_layer_norm_backward": [c_int] + [c_ptr] * 9 + [c_i64, c_i64, c_ptr],
    "tg_cuda_activation": [c_int, c_int, c_ptr, c_ptr, c_i64, c_float, c_ptr],
    "tg_cuda_activation_backward": [c_int, c_int, c_ptr, c_ptr, c_ptr, c_i64, c_float, c_ptr],
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(["softmax.cu", "layer_norm.cu", "activation.cu"], tmp_path_factory.mktemp("emu_rows"),
                             sanitize=False)
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    for name, argtypes in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = c_int, argtypes
    lib.tg_cuda_layer_norm_backward_workspace.restype = c_i64
    lib.tg_cuda_layer_norm_backward_workspace.argtypes = [c_i64, c_i64]
    return lib


def _p(a):
    return None if a is None else a.ctypes.data


DTYPES = {"float32": (np.float32, 0, 1e-5), "float16": (np.float16, 1, 1e-3)}  # numpy type, TG_DTYPE, rtol


def filled(shape, dtype=np.float32):
    return np.full(shape, 7.0, dtype)  # anything not written shows


def assert_close(got, want, scale, rtol, ctx):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want)
    bad = ~(err <= rtol * np.broadcast_to(scale, want.shape) + 1e-30)
    assert not bad.any(), f"{bad.sum()} of {want.size} off, worst {err.max():.3g}; {ctx}"


# (outer, n, inner): thread per row (n <= 4), warp per row (n <= 1024), block per row (256
# threads, 512 from 8192), and inner > 1 (the column kernel).
SOFTMAX = [(5, 3, 1), (7, 33, 1), (3, 1025, 1), (2, 8200, 1), (3, 9, 5), (2, 1, 1)]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SOFTMAX, ids=["x".join(map(str, s)) for s in SOFTMAX])
def test_softmax(lib, rng, shape, log, dtype):
    np_type, code, rtol = DTYPES[dtype]
    outer, n, inner = shape
    x = (rng.normal(outer, n, inner) * np.float32(3)).astype(np_type)
    if n > 1:
        x[0, 0, 0] = -np.inf  # a masked entry (a row of -inf only would be NaN)
    y = filled(x.shape, np_type)
    assert lib.tg_cuda_softmax(code, _p(x), _p(y), outer, n, inner, int(log), None) == 0
    want = REF["log_softmax" if log else "softmax"](x.astype(np.float64), 1)
    ctx = f"{dtype} {'log_' if log else ''}softmax {shape} {rng}"
    finite = np.isfinite(want)
    assert (np.isfinite(y) == finite).all(), ctx
    assert_close(np.where(finite, y, 0), np.where(finite, want, 0), np.abs(np.where(finite, want, 0)) + 1e-3, rtol, ctx)
    # the backward of the kernel's own (rounded) output, against float64 on the same inputs
    gy, gx = rng.normal(*x.shape).astype(np_type), filled(x.shape, np_type)
    assert lib.tg_cuda_softmax_backward(code, _p(y), _p(gy), _p(gx), outer, n, inner, int(log), None) == 0
    name = "log_softmax_backward" if log else "softmax_backward"
    y64, gy64 = y.astype(np.float64), gy.astype(np.float64)
    want_g = REF[name](y64, gy64, 1)
    scale = np.abs(gy64) + (np.exp(y64) if log else np.abs(y64)) * np.abs(gy64).sum(1, keepdims=True) + 1e-3
    assert_close(gx, want_g, scale, rtol, ctx + " backward")


LAYER_NORM = [(5, 7), (9, 33), (3, 1025), (2, 9000), (70, 5)]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("shape", LAYER_NORM, ids=["x".join(map(str, s)) for s in LAYER_NORM])
def test_layer_norm(lib, rng, shape, affine, dtype):
    np_type, code, rtol = DTYPES[dtype]
    rows, n = shape
    x = (rng.normal(rows, n) * np.float32(2) + np.float32(3)).astype(np_type)
    w, b = (rng.normal(n).astype(np_type), rng.normal(n).astype(np_type)) if affine else (None, None)
    y, mean, rstd = filled(x.shape, np_type), filled(rows), filled(rows)  # statistics: float32 always
    assert lib.tg_cuda_layer_norm(code, _p(x), _p(w), _p(b), _p(y), _p(mean), _p(rstd), rows, n, 1e-5, None) == 0
    f64 = (lambda a: None if a is None else a.astype(np.float64))
    wy, wm, wr = REF["layer_norm"](f64(x), f64(w), f64(b), 1, 1e-5)
    ctx = f"{dtype} layer_norm {shape} affine={affine} {rng}"
    assert_close(mean, wm.ravel(), np.abs(wm.ravel()) + 1, 1e-5, ctx)
    assert_close(rstd, wr.ravel(), np.abs(wr.ravel()), 1e-4, ctx)
    assert_close(y, wy, np.abs(wy) + 1 + (0 if b is None else np.abs(f64(b))), max(rtol, 1e-4), ctx)
    gy = rng.normal(rows, n).astype(np_type)
    want = REF["layer_norm_backward"](f64(x), f64(w), wm, wr, f64(gy), 1)
    g_mag = np.abs(f64(gy)) * (1 if w is None else np.abs(f64(w)))
    for use_workspace in (False, True):
        need = lib.tg_cuda_layer_norm_backward_workspace(rows, n)
        ws = filled(need) if use_workspace and need else None
        gx, gw, gb = filled(x.shape, np_type), filled(n, np_type), filled(n, np_type)
        assert lib.tg_cuda_layer_norm_backward(code, _p(x), _p(w), _p(mean), _p(rstd), _p(gy), _p(gx), _p(gw), _p(gb),
                                               _p(ws), rows, n, None) == 0
        c = f"{ctx} backward workspace={ws is not None}"
        assert_close(gx, want[0], (g_mag.sum(1, keepdims=True) / n + g_mag) * wr * 4 + np.abs(want[0]),
                     max(rtol, 1e-4), c)
        assert_close(gw, want[1], np.abs(want[1]) + np.abs(f64(gy)).sum(0) * 4, rtol, c)
        assert_close(gb, want[2], np.abs(f64(gy)).sum(0), rtol, c)


ACTS = {0: ("sigmoid", ()), 1: ("tanh", ()), 2: ("gelu", ("none",)), 3: ("gelu", ("tanh",)), 4: ("silu", ()),
        5: ("leaky_relu", (0.2,))}


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("n,offset", [(1, 0), (7, 0), (1030, 0), (1030, 1)], ids=["1", "7", "1030", "1030-unaligned"])
@pytest.mark.parametrize("act", sorted(ACTS), ids=[ACTS[a][0] + "-".join(map(str, ACTS[a][1])) for a in sorted(ACTS)])
def test_activation(lib, rng, act, n, offset, dtype):
    np_type, code, rtol = DTYPES[dtype]
    name, extra = ACTS[act]
    buf = (rng.normal(n + offset) * np.float32(4)).astype(np_type)
    x = buf[offset:]  # offset 1: not 16-byte aligned, the scalar path
    y = filled(n, np_type)
    param = 0.2 if name == "leaky_relu" else 0.0
    assert lib.tg_cuda_activation(act, code, _p(x), _p(y), n, param, None) == 0
    x64 = x.astype(np.float64)
    want = REF[name](x64, *extra)
    ctx = f"{dtype} {name}{extra} n={n} offset={offset} {rng}"
    assert_close(y, want, np.abs(want) + 0.01 * np.abs(x64) + 1e-6, rtol, ctx)
    gy, gx = rng.normal(n).astype(np_type), filled(n, np_type)
    first = y if name in ("sigmoid", "tanh") else x  # the backward takes y for these two
    assert lib.tg_cuda_activation_backward(act, code, _p(first), _p(gy), _p(gx), n, param, None) == 0
    want_g = REF[name + "_backward"](first.astype(np.float64), gy.astype(np.float64), *extra)
    scale = np.abs(want_g) + 0.1 * np.abs(gy.astype(np.float64)) * (1 + np.abs(x64) ** 3)
    assert_close(gx, want_g, scale, rtol, ctx + " backward")
