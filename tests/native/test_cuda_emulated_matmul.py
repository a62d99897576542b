"""The float32 CUDA matmul kernels (v1, v2, v3 TF32) and the bias_act kernel executed on the CPU
through the CUDA runtime stand-in (tests/native/cuda_emu), against float64 NumPy: both operand
layouts (transposed operands read in place), batches, the fused bias + ReLU epilogue, ragged
shapes around every tile edge. The GPU tests (test_cuda_kernels.py) remain the word on the real
hardware.

Slow (g++ compiles the kernels; every CUDA thread is an OS thread). Under AddressSanitizer, which
also checks every global access for bounds (a transposed operand read past its end shows):

    TILEGRAD_EMU_ASAN=1 LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python -m pytest -m slow tests/native/test_cuda_emulated_matmul.py
"""
import ctypes
import itertools
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

from .cuda_emu import emulate

pytestmark = pytest.mark.slow

SOURCES = ["matmul.cu", "matmul_v2.cu", "matmul_tf32.cu", "bias_act.cu"]
ENTRY = {1: "tg_cuda_matmul", 2: "tg_cuda_matmul_v2", 3: "tg_cuda_matmul_tf32"}
ACT = {"none": 0, "relu": 1}  # TG_EPILOGUE_*
c_i64, c_int, c_ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(SOURCES, tmp_path_factory.mktemp("cuda_emu_matmul"),
                             sanitize=os.environ.get("TILEGRAD_EMU_ASAN") == "1")
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    for name in ENTRY.values():
        fn = getattr(lib, name)
        fn.restype = c_int
        fn.argtypes = [c_ptr] * 4 + [c_i64] * 4 + [c_int] * 3 + [c_ptr]
    lib.tg_cuda_bias_act.restype = c_int
    lib.tg_cuda_bias_act.argtypes = [c_ptr, c_ptr, c_i64, c_i64, c_i64, c_int, c_ptr]
    return lib


def _ptr(a):
    return None if a is None else a.ctypes.data


def run_matmul(lib, version, a, b, trans_a, trans_b, bias=None, act="none", fill=np.nan):
    """out from the C entry point: a and b as stored (C-contiguous), the flags saying how to read them."""
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    m = a.shape[-1] if trans_a else a.shape[-2]
    k = a.shape[-2] if trans_a else a.shape[-1]
    n = b.shape[-2] if trans_b else b.shape[-1]
    batch = a.shape[0] if a.ndim == 3 else 1
    out = np.full(a.shape[:-2] + (m, n), fill, np.float32)
    err = getattr(lib, ENTRY[version])(_ptr(a), _ptr(b), _ptr(bias), _ptr(out), batch, m, n, k, int(trans_a),
                                       int(trans_b), ACT[act], None)
    assert err == 0
    return out


def tolerance(version, a64, b64, k, bias=None):
    """|error| bound per element: float32 summation, plus TF32's input rounding for v3 (each input
    to a 10-bit mantissa: 2^-11 relative each, so products keep about 2^-10), relative to the
    sum of the magnitudes (|a| @ |b| + |bias|: the bias add rounds too)."""
    rel = 1e-5 * max(1.0, math.sqrt(k)) + (2e-3 if version == 3 else 0.0)
    return rel * (np.abs(a64) @ np.abs(b64) + (0.0 if bias is None else np.abs(bias.astype(np.float64)))) + 1e-30


def check(lib, rng, version, batch, m, n, k, trans_a, trans_b, with_bias, act):
    lead = (batch,) if batch else ()
    a, b = rng.normal(*lead, m, k), rng.normal(*lead, k, n)
    bias = rng.normal(n) if with_bias else None
    a_arg = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if trans_a else a
    b_arg = np.ascontiguousarray(np.swapaxes(b, -1, -2)) if trans_b else b
    got = run_matmul(lib, version, a_arg, b_arg, trans_a, trans_b, bias, act)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64 + (0.0 if bias is None else bias.astype(np.float64))
    if act == "relu":
        want = np.maximum(want, 0.0)
    # relu is 1-Lipschitz, so the product's error bound holds after it.
    bad = np.argwhere(~(np.abs(got - want) <= tolerance(version, a64, b64, k, bias)))
    assert bad.size == 0, (f"v{version} batch={batch} {m}x{k}x{n} trans_a={trans_a} trans_b={trans_b} "
                           f"bias={with_bias} {act}: {len(bad)} bad, first {tuple(bad[0])}; {rng}")


TRANS = list(itertools.product([False, True], repeat=2))
TRANS_IDS = ["NN", "NT", "TN", "TT"]

# (m, n, k) around each version's tiles: v1 64 x 64 x 16, v2 128 x 128 x 8, v3 128 x 128 x 16 (its
# emulated mma.sync is the slowest part: fewer, thinner shapes). Each shape runs once without and
# once with the epilogue, the bias on alternate shapes.
SHAPES = {1: [(1, 1, 1), (65, 7, 17), (3, 66, 33)],
          2: [(1, 1, 1), (129, 9, 17), (5, 130, 9)],
          3: [(1, 1, 1), (129, 3, 17), (2, 131, 9)]}


@pytest.mark.parametrize("trans", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_layouts(lib, rng, version, trans):
    for i, (m, n, k) in enumerate(SHAPES[version]):
        check(lib, rng, version, 0, m, n, k, *trans, with_bias=i % 2 == 0, act="none")
        check(lib, rng, version, 0, m, n, k, *trans, with_bias=i % 2 == 1, act="relu")


@pytest.mark.parametrize("trans", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_batched(lib, rng, version, trans):
    check(lib, rng, version, 3, 9, 13, 20, *trans, with_bias=True, act="relu")
    check(lib, rng, version, 2, 5, 3, 7, *trans, with_bias=False, act="none")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_k_zero_writes_the_epilogue_of_zero(lib, rng, version):
    bias = rng.normal(5)
    for act, want in (("none", np.broadcast_to(bias, (4, 5))), ("relu", np.broadcast_to(np.maximum(bias, 0), (4, 5)))):
        got = run_matmul(lib, version, np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32), False, False,
                         bias, act)
        np.testing.assert_array_equal(got, want, err_msg=str(rng))
    got = run_matmul(lib, version, np.zeros((0, 4), np.float32), np.zeros((5, 0), np.float32), True, True)
    np.testing.assert_array_equal(got, np.zeros((4, 5), np.float32))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_relu_passes_nan(lib, version):
    a = np.array([[np.nan, 1.0], [-1.0, 2.0]], np.float32)
    got = run_matmul(lib, version, a, np.eye(2, dtype=np.float32), False, False, None, "relu")
    assert np.isnan(got[0]).all() and (got[1] == [0.0, 2.0]).all()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_matmul_rejects_unknown_epilogue(lib, version):
    one = np.ones((1, 1), np.float32)
    out = np.zeros((1, 1), np.float32)
    assert getattr(lib, ENTRY[version])(_ptr(one), _ptr(one), None, _ptr(out), 1, 1, 1, 1, 0, 0, 2, None) != 0


def test_tf32_rounds_inputs(lib):
    # v3 really rounds to TF32 in the emulation too: 1 + 2^-12 becomes 1 (v1 keeps it).
    a = np.full((16, 8), 1 + 2.0 ** -12, np.float32)
    eye = np.eye(8, dtype=np.float32)
    np.testing.assert_array_equal(run_matmul(lib, 3, a, eye, False, True), np.ones((16, 8), np.float32))
    np.testing.assert_array_equal(run_matmul(lib, 1, a, eye, False, True), a)


@pytest.mark.parametrize("shape,with_bias,act", [((2, 3, 5), True, "relu"), ((4, 1, 1), True, "none"),
                                                 ((1, 7, 300), False, "relu"), ((3, 9, 1), True, "relu")])
def test_bias_act(lib, rng, shape, with_bias, act):
    outer, channels, inner = shape
    y = rng.normal(*shape)
    bias = rng.normal(channels) if with_bias else None
    want = y + (0 if bias is None else bias[:, None])
    if act == "relu":
        want = np.maximum(want, 0)
    assert lib.tg_cuda_bias_act(_ptr(y), _ptr(bias), outer, channels, inner, ACT[act], None) == 0
    np.testing.assert_allclose(y, want, rtol=0, atol=0, err_msg=str(rng))  # one float32 add: exact
    assert lib.tg_cuda_bias_act(_ptr(y), _ptr(bias), outer, channels, inner, 7, None) != 0


# ---- the CUDA backend's matmul / linear / bias_act, with NumPy as CuPy and the emulated kernels ----

class FakeCuda:
    """tilegrad._cuda's matmul and bias_act on NumPy arrays through the emulated kernels (what the
    bindings would insist on is asserted, not checked with messages)."""

    def __init__(self, lib):
        self.lib = lib
        self.calls = []

    def matmul(self, a, b, out, stream=0, *, version=0, trans_a=False, trans_b=False, bias=None,
               activation="none"):
        for x in (a, b, out, bias):
            assert x is None or (x.flags.c_contiguous and x.dtype == np.float32)
        self.calls.append(("matmul", version, trans_a, trans_b, bias is not None, activation))
        got = run_matmul(self.lib, version or 1, a, b, trans_a, trans_b, bias, activation)
        assert got.shape == out.shape
        out[...] = got

    def bias_act(self, y, bias, dim, activation, stream=0):
        assert y.flags.c_contiguous and y.dtype == np.float32 and (bias is None or bias.shape == (y.shape[dim],))
        self.calls.append(("bias_act", dim, activation))
        dim %= y.ndim
        outer, inner = math.prod(y.shape[:dim]), math.prod(y.shape[dim + 1:])
        assert self.lib.tg_cuda_bias_act(_ptr(y), _ptr(bias), outer, y.shape[dim], inner, ACT[activation], None) == 0


@pytest.fixture
def backend(lib, monkeypatch):
    from tilegrad.backends import cuda
    fake = FakeCuda(lib)
    monkeypatch.setattr(cuda, "_cuda", fake)
    monkeypatch.setattr(cuda, "_cupy", lambda: np)
    monkeypatch.setattr(cuda, "_stream", lambda: 0)
    return cuda, fake


def assert_matmul_close(got, want64, a64, b64, version, rng, what, bias=None):
    tol = tolerance(version, a64, b64, a64.shape[-1], bias)
    bad = np.argwhere(~(np.abs(got - want64) <= tol))
    assert bad.size == 0, f"{what}: {len(bad)} bad, first {tuple(bad[0])}; {rng}"


def test_backend_matmul_reads_transposed_views_in_place(backend, rng):
    cuda, fake = backend
    a, b = rng.normal(19, 7), rng.normal(13, 19)
    for x, y, flags in ((a.T, b.T, (True, True)), (a.T, rng.normal(19, 5), (True, False)),
                        (rng.normal(7, 19), b.T, (False, True))):
        fake.calls.clear()
        got = cuda.matmul(x, y)
        assert fake.calls == [("matmul", 0, *flags, False, "none")]
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        assert_matmul_close(got, x64 @ y64, x64, y64, 1, rng, f"matmul {x.shape} @ {y.shape} {flags}")
    # batched: the last-two-dims swap of a contiguous array
    p, q = rng.normal(3, 9, 5), rng.normal(3, 4, 9)
    fake.calls.clear()
    got = cuda.matmul(p.swapaxes(1, 2), q.swapaxes(1, 2))
    assert fake.calls == [("matmul", 0, True, True, False, "none")]
    p64, q64 = p.swapaxes(1, 2).astype(np.float64), q.swapaxes(1, 2).astype(np.float64)
    assert_matmul_close(got, p64 @ q64, p64, q64, 1, rng, "batched transposed")


def test_backend_matmul_falls_back(backend, rng):
    cuda, fake = backend
    a = rng.normal(6, 8)
    for x, y in ((a[:, ::2], rng.normal(4, 3)), (a.astype(np.float64), rng.normal(8, 2).astype(np.float64)),
                 (rng.normal(2, 3, 4), rng.normal(1, 4, 5))):
        fake.calls.clear()
        got = cuda.matmul(x, y)
        assert fake.calls == []
        np.testing.assert_allclose(got, np.matmul(x.astype(np.float64), y), rtol=1e-5, atol=1e-5, err_msg=str(rng))


@pytest.mark.parametrize("tf32", [False, True], ids=["highest", "tf32"])
def test_backend_precision_picks_the_version(backend, rng, tf32):
    from tilegrad.backends import precision
    cuda, fake = backend
    old = precision.get_float32_matmul_precision()
    precision.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        a, b = rng.normal(5, 20), rng.normal(20, 6)
        got = cuda.matmul(a, b)
        cuda.linear(a, b.T.copy(), None, "none")
    finally:
        precision.set_float32_matmul_precision(old)
    assert [c[1] for c in fake.calls] == [3 if tf32 else 0] * 2
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert_matmul_close(got, a64 @ b64, a64, b64, 3 if tf32 else 1, rng, "precision")


@pytest.mark.parametrize("x_shape", [(7, 12), (2, 3, 12), (12,), (0, 12)])
@pytest.mark.parametrize("with_bias,act", [(True, "relu"), (False, "none"), (True, "none")])
def test_backend_linear_is_one_kernel(backend, rng, x_shape, with_bias, act):
    cuda, fake = backend
    x, w = rng.normal(*x_shape), rng.normal(9, 12)
    b = rng.normal(9) if with_bias else None
    got = cuda.linear(x, w, b, act)
    assert got.shape == x_shape[:-1] + (9,)
    if got.size:
        assert fake.calls == [("matmul", 0, False, True, with_bias, act)]
    want = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    want = np.maximum(want, 0) if act == "relu" else want
    x64 = x.reshape(-1, 12).astype(np.float64)
    assert_matmul_close(got.reshape(-1, 9), want.reshape(-1, 9), x64, w.T.astype(np.float64), 1, rng, "linear", b)


def test_backend_linear_transposed_x_and_fallbacks(backend, rng):
    cuda, fake = backend
    x, w, b = rng.normal(12, 7).T, rng.normal(9, 12), rng.normal(9)
    got = cuda.linear(x, w, b, "relu")
    assert fake.calls == [("matmul", 0, True, True, True, "relu")]
    x64, wt64 = x.astype(np.float64), w.T.astype(np.float64)
    assert_matmul_close(got, np.maximum(x64 @ wt64 + b, 0), x64, wt64, 1, rng, "linear x.T", b)
    # float64, a weight with odd strides, a float64 bias: the reference
    fake.calls.clear()
    odd_w = rng.normal(9, 24)[:, ::2]
    for args in ((x.astype(np.float64), w.astype(np.float64), None), (x, odd_w, b), (x, w, b.astype(np.float64))):
        got = cuda.linear(*args, "relu")
        x64, w64 = args[0].astype(np.float64), args[1].astype(np.float64)
        want = np.maximum(x64 @ w64.T + (0 if args[2] is None else args[2]), 0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(rng))
    assert fake.calls == []


@pytest.mark.parametrize("shape,dim", [((2, 5, 3, 4), 1), ((6, 7), -1), ((4,), 0), ((3, 0, 2), 1)])
@pytest.mark.parametrize("with_bias,act", [(True, "relu"), (False, "relu"), (True, "none")])
def test_backend_bias_act_in_place(backend, rng, shape, dim, with_bias, act):
    cuda, fake = backend
    y = rng.normal(*shape)
    b = rng.normal(shape[dim]) if with_bias else None
    shape_b = [1] * len(shape)
    shape_b[dim] = shape[dim]
    want = y + (0 if b is None else b.reshape(shape_b))
    want = np.maximum(want, 0) if act == "relu" else want
    got = cuda.bias_act(y, b, dim, act)
    assert got is y and fake.calls == [("bias_act", dim, act)]
    np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=str(rng))
