"""The conv2d kernels, float32 SIMT (v1: kernels/cuda/conv2d.cu, conv2d_weight.cu) and TF32
tensor-core (v2: kernels/cuda/conv2d_tf32*.cu), executed on the CPU through the CUDA stand-in
of tests/native/cuda_emu (one std::thread per CUDA thread, barriers for __syncthreads and the
warp exchanges of the emulated mma), against float64 references: forward (plain, and with the
fused bias + ReLU epilogue), input gradient and weight gradient (with and without the
split-sum workspace) on small ragged geometries: strides, padding, dilation, groups, 1x1 and
3x3 kernels, channel counts off the tiles, both v2 block heights (64 and 128 rows).

v1 is checked against the float64 reference within float32 accumulation error. v2 twice:
against the float64 reference within the TF32 bound (each input rounded to a 10-bit
mantissa: 2e-3 of the sum of |x| * |w|), and against the float64 result of the TF32-rounded
inputs within float32 accumulation error, which says the kernel computes exactly the rounded
products (a dropped or doubled term shows in either).

Slow (g++ compiles the kernels, about a minute). Under AddressSanitizer:

    TILEGRAD_EMU_ASAN=1 LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python -m pytest -m slow tests/native/test_cuda_emulated_conv.py
"""
import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

from tilegrad.backends import reference
from tilegrad.backends.native import conv_geometry

from .cuda_emu import emulate

pytestmark = pytest.mark.slow

REF = reference.KERNELS
SOURCES = ["conv2d.cu", "conv2d_weight.cu", "conv2d_tf32.cu", "conv2d_tf32_weight.cu", "bias_act.cu"]
SUFFIX = {1: "", 2: "_tf32"}  # the C entry points of each kernel version
EPILOGUE = {"none": 0, "relu": 1}  # TG_EPILOGUE_*


class TgConv2dGeom(ctypes.Structure):  # tg_cuda.h
    _fields_ = [(name, ctypes.c_int64) for name in
                ("n", "c", "h", "w", "o", "kh", "kw", "oh", "ow", "sh", "sw", "ph", "pw", "dh", "dw", "groups")]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    try:
        path = emulate.build(SOURCES, tmp_path_factory.mktemp("cuda_emu_conv"),
                             sanitize=os.environ.get("TILEGRAD_EMU_ASAN") == "1")
    except subprocess.CalledProcessError:
        pytest.skip("g++ cannot build the emulation (it needs C++20 <barrier>)")
    lib = ctypes.CDLL(str(path))
    geom = ctypes.POINTER(TgConv2dGeom)
    p = ctypes.c_void_p
    for suffix in SUFFIX.values():
        for name, args in {"tg_cuda_conv2d": [p, p, p, p, geom, ctypes.c_int, p],
                           "tg_cuda_conv2d_backward_input": [p, p, p, geom, p],
                           "tg_cuda_conv2d_backward_weight": [p, p, p, p, geom, p]}.items():
            fn = getattr(lib, name + suffix)
            fn.restype, fn.argtypes = ctypes.c_int, args
        fn = getattr(lib, "tg_cuda_conv2d_backward_weight_workspace" + suffix)
        fn.restype, fn.argtypes = ctypes.c_int64, [geom]
    return lib


def geom(xs, ws, s, p, d, g):
    oh, ow = conv_geometry(xs, ws, s, p, d, g)[3][2:]
    return TgConv2dGeom(xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], oh, ow, s[0], s[1], p[0], p[1], d[0], d[1], g)


def ptr(a):
    return a.ctypes.data


def tf32(a):
    """float32 values rounded to TF32 as the kernels (and cvt.rna) do: nearest, ties away from zero."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def check(got, name, arrays, args, terms, ctx, version=2, bias=None, activation="none"):
    """got against REF[name] on float64 copies of `arrays` (then + bias along dim 1 and the
    activation, for the fused forward). v2: within the TF32 bound of the exact result, and within
    float32 accumulation error of the result of the TF32-rounded inputs (bias not rounded: the
    epilogue adds it in float32). v1: within float32 accumulation error of the exact result."""
    def reference(arrays, b=None if bias is None else np.asarray(bias, np.float64), act=activation):
        return REF["bias_act"](REF[name](*arrays, *args), b, 1, act)

    f64 = [np.asarray(a, np.float64) for a in arrays]
    want = reference(f64)
    scale = reference([np.abs(a) for a in f64], None if bias is None else np.abs(np.asarray(bias, np.float64)),
                      "none")
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, ctx
    float32_tol = 1e-6 * max(1.0, np.sqrt(terms)) * scale + 1e-30
    if version == 1:
        bounds = [("exact", want, float32_tol)]
    else:
        bounds = [("exact", want, 2e-3 * scale + 1e-30),
                  ("tf32-rounded", reference([tf32(a).astype(np.float64) for a in arrays]), float32_tol)]
    for label, ref, tol in bounds:
        bad = np.argwhere(~(np.abs(got - ref) <= tol))  # NaN (an unwritten element) fails too
        if bad.size:
            i = tuple(bad[0])
            raise AssertionError(f"{name} vs the {label} reference: {len(bad)} of {ref.size} off, first at {i}: "
                                 f"got {got[i]!r}, want {ref[i]!r}, allowed {tol[i]!r}; {ctx}")


# (x shape, w shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),       # 3-channel first layer, depth 27
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),       # groups, dilation, mixed stride
    ((2, 5, 6, 7), (3, 5, 1, 1), (1, 1), (0, 0), (1, 1), 1),       # 1x1, depth 5
    ((1, 8, 11, 10), (12, 4, 3, 3), (2, 2), (2, 2), (2, 2), 2),    # stride, padding, dilation 2; depth 36
    ((2, 16, 9, 9), (20, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),    # depth 144: 16-byte weight copies
    ((1, 2, 5, 5), (3, 2, 3, 3), (1, 2), (0, 2), (2, 1), 1),       # padding 2 on one side only
    ((1, 70, 5, 6), (66, 70, 1, 1), (1, 1), (0, 0), (1, 1), 1),    # 128-row blocks both ways, ragged
    ((1, 4, 6, 6), (130, 2, 1, 1), (2, 2), (1, 1), (1, 1), 2),     # 65 rows per group: 128-row blocks
    ((2, 3, 24, 24), (8, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),     # 9 column tiles; split weight sum
    ((3, 2, 23, 21), (4, 1, 2, 2), (1, 1), (0, 0), (1, 1), 2),     # split sum with a ragged last chunk
]
IDS = [f"x{'x'.join(map(str, c[0]))}-w{'x'.join(map(str, c[1]))}-s{c[2][0]}{c[2][1]}-p{c[3][0]}{c[3][1]}"
       f"-d{c[4][0]}{c[4][1]}-g{c[5]}" for c in CASES]


def forward(lib, x, w, gm, bias=None, activation="none", version=2):
    y = np.full((gm.n, gm.o, gm.oh, gm.ow), np.nan, np.float32)
    fn = getattr(lib, "tg_cuda_conv2d" + SUFFIX[version])
    assert fn(ptr(x), ptr(w), None if bias is None else ptr(bias), ptr(y), ctypes.byref(gm), EPILOGUE[activation],
              None) == 0
    return y


VERSIONS = pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])


@VERSIONS
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_forward(lib, rng, xs, ws, s, p, d, g, version):
    x, w = rng.normal(*xs), rng.normal(*ws)
    y = forward(lib, x, w, geom(xs, ws, s, p, d, g), version=version)
    check(y, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], f"{xs} {ws}; {rng}", version)


# The fused epilogue on ragged shapes: (x shape, w shape, stride, padding, dilation, groups, bias, activation).
# Output channels off the tiles and in several groups and row tiles, so a bias indexed by anything but
# the output channel shows.
FUSED = [
    ((2, 3, 7, 6), (5, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1, True, "relu"),
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2, True, "relu"),      # groups, dilation, mixed stride
    ((1, 70, 5, 6), (66, 70, 1, 1), (1, 1), (0, 0), (1, 1), 1, True, "relu"),   # v1: 2 row tiles; v2: 128 rows
    ((1, 4, 6, 6), (130, 2, 1, 1), (2, 2), (1, 1), (1, 1), 2, True, "none"),    # 65 rows per group
    ((1, 8, 11, 10), (12, 4, 3, 3), (2, 2), (2, 2), (2, 2), 2, False, "relu"),  # ReLU alone
    ((2, 3, 13, 11), (7, 3, 2, 3), (1, 2), (1, 0), (2, 1), 1, True, "none"),    # bias alone, 3 column tiles
]
FUSED_IDS = [f"x{'x'.join(map(str, c[0]))}-w{'x'.join(map(str, c[1]))}-g{c[5]}-{'bias' if c[6] else 'nobias'}-{c[7]}"
             for c in FUSED]


@VERSIONS
@pytest.mark.parametrize("xs,ws,s,p,d,g,has_bias,act", FUSED, ids=FUSED_IDS)
def test_forward_fused_epilogue(lib, rng, xs, ws, s, p, d, g, has_bias, act, version):
    x, w = rng.normal(*xs), rng.normal(*ws)
    bias = rng.normal(ws[0]) if has_bias else None
    y = forward(lib, x, w, geom(xs, ws, s, p, d, g), bias, act, version)
    check(y, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], f"{xs} {ws} {act}; {rng}", version, bias, act)
    if act == "relu":
        assert (y == 0).any() and (y > 0).any(), "the ReLU should clip some outputs and pass others"


@VERSIONS
def test_unknown_epilogue_is_refused(lib, rng, version):
    xs, ws, s, p, d, g = CASES[0]
    x, w = rng.normal(*xs), rng.normal(*ws)
    gm = geom(xs, ws, s, p, d, g)
    y = np.full((gm.n, gm.o, gm.oh, gm.ow), np.nan, np.float32)
    fn = getattr(lib, "tg_cuda_conv2d" + SUFFIX[version])
    assert fn(ptr(x), ptr(w), None, ptr(y), ctypes.byref(gm), 2, None) != 0
    assert np.isnan(y).all(), "nothing written"


@VERSIONS
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_backward_input(lib, rng, xs, ws, s, p, d, g, version):
    gm = geom(xs, ws, s, p, d, g)
    gy, w = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*ws)
    gx = np.full(xs, np.nan, np.float32)
    fn = getattr(lib, "tg_cuda_conv2d_backward_input" + SUFFIX[version])
    assert fn(ptr(gy), ptr(w), ptr(gx), ctypes.byref(gm), None) == 0
    check(gx, "conv2d_backward_input", (gy, w), (xs, s, p, d, g), ws[0] // g * ws[2] * ws[3], f"{xs} {ws}; {rng}",
          version)


def backward_weight(lib, gy, x, ws, gm, use_workspace, version=2):
    need = getattr(lib, "tg_cuda_conv2d_backward_weight_workspace" + SUFFIX[version])(ctypes.byref(gm))
    scratch = np.full(max(need, 1), np.nan, np.float32)  # stale NaNs must not leak
    gw = np.full(ws, np.nan, np.float32)
    fn = getattr(lib, "tg_cuda_conv2d_backward_weight" + SUFFIX[version])
    assert fn(ptr(gy), ptr(x), ptr(gw), ptr(scratch) if use_workspace else None, ctypes.byref(gm), None) == 0
    return gw, need


@VERSIONS
@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_backward_weight(lib, rng, xs, ws, s, p, d, g, use_workspace, version):
    gm = geom(xs, ws, s, p, d, g)
    gy, x = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*xs)
    gw, _ = backward_weight(lib, gy, x, ws, gm, use_workspace, version)
    check(gw, "conv2d_backward_weight", (gy, x), (ws, s, p, d, g), gm.n * gm.oh * gm.ow,
          f"{xs} {ws} workspace={use_workspace}; {rng}", version)


def test_split_weight_gradient_is_used_and_deterministic(lib, rng):
    xs, ws, s, p, d, g = CASES[-2]
    gm = geom(xs, ws, s, p, d, g)
    gy, x = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*xs)
    first, need = backward_weight(lib, gy, x, ws, gm, True)
    assert need >= 2 * int(np.prod(ws)), "the pixel sum should be split into chunks"
    np.testing.assert_array_equal(backward_weight(lib, gy, x, ws, gm, True)[0], first, err_msg=str(rng))


@VERSIONS
def test_empty_sums(lib, rng, version):
    s, p, d = (1, 1), (1, 1), (1, 1)
    # No input channels: the forward is zeros, or act(bias) with the epilogue. No output channels:
    # the input gradient is zeros.
    x, w, bias = rng.normal(2, 0, 5, 5), rng.normal(4, 0, 3, 3), rng.normal(4)
    gm = geom(x.shape, w.shape, s, p, d, 1)
    np.testing.assert_array_equal(forward(lib, x, w, gm, version=version), 0)
    for act in ("none", "relu"):
        want = np.broadcast_to(REF["bias_act"](bias, None, 0, act)[:, None, None], (2, 4, 5, 5))
        np.testing.assert_array_equal(forward(lib, x, w, gm, bias, act, version), want, err_msg=act)
    gy, w = rng.normal(2, 0, 5, 5), rng.normal(0, 3, 3, 3)
    gm = geom((2, 3, 5, 5), w.shape, s, p, d, 1)
    gx = np.full((2, 3, 5, 5), np.nan, np.float32)
    fn = getattr(lib, "tg_cuda_conv2d_backward_input" + SUFFIX[version])
    assert fn(ptr(gy), ptr(w), ptr(gx), ctypes.byref(gm), None) == 0
    np.testing.assert_array_equal(gx, 0)
    # No images: the weight gradient is zeros.
    gy, x = rng.normal(0, 4, 5, 5), rng.normal(0, 3, 5, 5)
    gm = geom(x.shape, (4, 3, 3, 3), s, p, d, 1)
    np.testing.assert_array_equal(backward_weight(lib, gy, x, (4, 3, 3, 3), gm, True, version)[0], 0)


def test_no_data_races(tmp_path):
    emulate.assert_no_races(SOURCES, tmp_path, "race_driver_conv.cpp")


# ---- the backend's choice: v2 under set_float32_matmul_precision("high"), v1 otherwise --------

class FakeConvModule:
    """Stands in for tilegrad._cuda's conv bindings (their names, arguments and `version`) with
    the emulated kernels on NumPy arrays, and records the versions asked for."""

    def __init__(self, lib):
        self.lib, self.versions = lib, []

    def _suffix(self, version):
        self.versions.append(version)
        return {1: "", 2: "_tf32"}[version]

    def conv2d(self, x, w, stride, padding, dilation, groups, out, stream=0, version=0, bias=None,
               activation="none"):
        gm = geom(x.shape, w.shape, stride, padding, dilation, groups)
        fn = getattr(self.lib, "tg_cuda_conv2d" + self._suffix(version))
        assert fn(ptr(x), ptr(w), None if bias is None else ptr(bias), ptr(out), ctypes.byref(gm),
                  EPILOGUE[activation], None) == 0

    def conv2d_backward_input(self, gy, w, stride, padding, dilation, groups, gx, stream=0, version=0):
        gm = geom(gx.shape, w.shape, stride, padding, dilation, groups)
        fn = getattr(self.lib, "tg_cuda_conv2d_backward_input" + self._suffix(version))
        assert fn(ptr(gy), ptr(w), ptr(gx), ctypes.byref(gm), None) == 0

    def conv2d_backward_weight_workspace(self, x_shape, w_shape, stride, padding, dilation, groups, version=0):
        gm = geom(x_shape, w_shape, stride, padding, dilation, groups)
        return getattr(self.lib, "tg_cuda_conv2d_backward_weight_workspace" + {1: "", 2: "_tf32"}[version])(
            ctypes.byref(gm))

    def conv2d_backward_weight(self, gy, x, stride, padding, dilation, groups, gw, stream=0, workspace=None,
                               version=0):
        gm = geom(x.shape, gw.shape, stride, padding, dilation, groups)
        fn = getattr(self.lib, "tg_cuda_conv2d_backward_weight" + self._suffix(version))
        assert fn(ptr(gy), ptr(x), ptr(gw), None if workspace is None else ptr(workspace), ctypes.byref(gm),
                  None) == 0


@pytest.fixture
def backend(lib, monkeypatch):
    from tilegrad.backends import cuda
    monkeypatch.setattr(cuda, "_cuda", FakeConvModule(lib))
    monkeypatch.setattr(cuda, "_cupy", lambda: np)
    monkeypatch.setattr(cuda, "_stream", lambda: 0)
    return cuda


def test_backend_picks_tf32_when_allowed(backend, rng):
    import tilegrad
    xs, ws, s, p, d, g = CASES[-2]  # the split weight-gradient sum
    gm = geom(xs, ws, s, p, d, g)
    x, w, gy = rng.normal(*xs), rng.normal(*ws), rng.normal(gm.n, gm.o, gm.oh, gm.ow)
    old = tilegrad.get_float32_matmul_precision()
    try:
        for precision, version in (("high", 2), ("highest", 1)):
            tilegrad.set_float32_matmul_precision(precision)
            backend._cuda.versions.clear()
            y = backend.conv2d(x, w, s, p, d, g)
            gx = backend.conv2d_backward_input(gy, w, xs, s, p, d, g)
            gw = backend.conv2d_backward_weight(gy, x, ws, s, p, d, g)
            assert backend._cuda.versions == [version] * 3, precision
            if version == 2:
                check(y, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], rng)
                check(gx, "conv2d_backward_input", (gy, w), (xs, s, p, d, g), ws[0] * ws[2] * ws[3], rng)
                check(gw, "conv2d_backward_weight", (gy, x), (ws, s, p, d, g), gy.size // gy.shape[1], rng)
            else:  # float32 throughout: well inside the TF32-rounded result's distance from the exact one
                want = REF["conv2d"](x.astype(np.float64), w.astype(np.float64), s, p, d, g)
                np.testing.assert_allclose(y, want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=str(rng))
    finally:
        tilegrad.set_float32_matmul_precision(old)


def test_backend_fuses_bias_and_relu_into_the_conv(backend, rng):
    # One conv call with the bias and the ReLU (the fake module has no bias_act: a second pass
    # over the output would fail), under both precisions.
    import tilegrad
    xs, ws, s, p, d, g, _, _ = FUSED[1]
    x, w, b = rng.normal(*xs), rng.normal(*ws), rng.normal(ws[0])
    old = tilegrad.get_float32_matmul_precision()
    try:
        for precision, version in (("high", 2), ("highest", 1)):
            tilegrad.set_float32_matmul_precision(precision)
            backend._cuda.versions.clear()
            y = backend.conv2d_bias_act(x, w, b, s, p, d, g, "relu")
            assert backend._cuda.versions == [version], precision
            check(y, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], rng, version, b, "relu")
    finally:
        tilegrad.set_float32_matmul_precision(old)


def test_backend_fused_conv_fallbacks(backend, rng, monkeypatch):
    # What the kernel does not take keeps the reference's values: a float64 input runs on the
    # reference (no kernel call), a float64 bias runs the conv and then bias_act's own fallback.
    xs, ws, s, p, d, g, _, _ = FUSED[0]
    x, w, b = rng.normal(*xs), rng.normal(*ws), rng.normal(ws[0])
    want = REF["conv2d_bias_act"](x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, p, d, g,
                                  "relu")
    tol = dict(rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=str(rng))
    y = backend.conv2d_bias_act(x.astype(np.float64), w, b, s, p, d, g, "relu")
    assert backend._cuda.versions == [] and y.dtype == np.float64
    np.testing.assert_allclose(y, want, **tol)
    y = backend.conv2d_bias_act(x, w, b.astype(np.float64), s, p, d, g, "relu")
    assert backend._cuda.versions == [1]
    np.testing.assert_allclose(y, want, **tol)
