"""The TF32 tensor-core conv2d kernels (v2: kernels/cuda/conv2d_tf32*.cu) executed on the CPU
through the CUDA stand-in of tests/native/cuda_emu (one std::thread per CUDA thread, barriers
for __syncthreads and the warp exchanges of the emulated mma), against float64 references:
forward, input gradient and weight gradient (with and without the split-sum workspace) on
small ragged geometries: strides, padding, dilation, groups, 1x1 and 3x3 kernels, channel
counts off the tiles, both block heights (64 and 128 rows).

Two checks per result: against the float64 reference within the TF32 bound (each input
rounded to a 10-bit mantissa: 2e-3 of the sum of |x| * |w|), and against the float64 result
of the TF32-rounded inputs within float32 accumulation error, which says the kernel computes
exactly the rounded products (a dropped or doubled term shows in either).

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
SOURCES = ["conv2d.cu", "conv2d_weight.cu", "conv2d_tf32.cu", "conv2d_tf32_weight.cu"]


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
    for suffix in ("", "_tf32"):
        for name, args in {"tg_cuda_conv2d": [p, p, p, geom, p], "tg_cuda_conv2d_backward_input": [p, p, p, geom, p],
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


def check(got, name, arrays, args, terms, ctx):
    """got against REF[name] on float64 copies of `arrays`: within the TF32 bound of the exact
    result, and within float32 accumulation error of the result of the TF32-rounded inputs."""
    f64 = [np.asarray(a, np.float64) for a in arrays]
    want = REF[name](*f64, *args)
    scale = REF[name](*[np.abs(a) for a in f64], *args)
    rounded = REF[name](*[tf32(a).astype(np.float64) for a in arrays], *args)
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, ctx
    for label, ref, tol in (("exact", want, 2e-3 * scale + 1e-30),
                            ("tf32-rounded", rounded, 1e-6 * max(1.0, np.sqrt(terms)) * scale + 1e-30)):
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


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_forward(lib, rng, xs, ws, s, p, d, g):
    x, w = rng.normal(*xs), rng.normal(*ws)
    gm = geom(xs, ws, s, p, d, g)
    y = np.full((gm.n, gm.o, gm.oh, gm.ow), np.nan, np.float32)
    assert lib.tg_cuda_conv2d_tf32(ptr(x), ptr(w), ptr(y), ctypes.byref(gm), None) == 0
    check(y, "conv2d", (x, w), (s, p, d, g), ws[1] * ws[2] * ws[3], f"{xs} {ws}; {rng}")


@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_backward_input(lib, rng, xs, ws, s, p, d, g):
    gm = geom(xs, ws, s, p, d, g)
    gy, w = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*ws)
    gx = np.full(xs, np.nan, np.float32)
    assert lib.tg_cuda_conv2d_backward_input_tf32(ptr(gy), ptr(w), ptr(gx), ctypes.byref(gm), None) == 0
    check(gx, "conv2d_backward_input", (gy, w), (xs, s, p, d, g), ws[0] // g * ws[2] * ws[3], f"{xs} {ws}; {rng}")


def backward_weight(lib, gy, x, ws, gm, use_workspace):
    need = lib.tg_cuda_conv2d_backward_weight_workspace_tf32(ctypes.byref(gm))
    scratch = np.full(max(need, 1), np.nan, np.float32)  # stale NaNs must not leak
    gw = np.full(ws, np.nan, np.float32)
    err = lib.tg_cuda_conv2d_backward_weight_tf32(ptr(gy), ptr(x), ptr(gw), ptr(scratch) if use_workspace else None,
                                                  ctypes.byref(gm), None)
    assert err == 0
    return gw, need


@pytest.mark.parametrize("use_workspace", [True, False], ids=["ws", "no-ws"])
@pytest.mark.parametrize("xs,ws,s,p,d,g", CASES, ids=IDS)
def test_backward_weight(lib, rng, xs, ws, s, p, d, g, use_workspace):
    gm = geom(xs, ws, s, p, d, g)
    gy, x = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*xs)
    gw, _ = backward_weight(lib, gy, x, ws, gm, use_workspace)
    check(gw, "conv2d_backward_weight", (gy, x), (ws, s, p, d, g), gm.n * gm.oh * gm.ow,
          f"{xs} {ws} workspace={use_workspace}; {rng}")


def test_split_weight_gradient_is_used_and_deterministic(lib, rng):
    xs, ws, s, p, d, g = CASES[-2]
    gm = geom(xs, ws, s, p, d, g)
    gy, x = rng.normal(gm.n, gm.o, gm.oh, gm.ow), rng.normal(*xs)
    first, need = backward_weight(lib, gy, x, ws, gm, True)
    assert need >= 2 * int(np.prod(ws)), "the pixel sum should be split into chunks"
    np.testing.assert_array_equal(backward_weight(lib, gy, x, ws, gm, True)[0], first, err_msg=str(rng))


def test_empty_sums(lib, rng):
    s, p, d = (1, 1), (1, 1), (1, 1)
    # No input channels: the forward is zeros. No output channels: the input gradient is zeros.
    x, w = rng.normal(2, 0, 5, 5), rng.normal(4, 0, 3, 3)
    gm = geom(x.shape, w.shape, s, p, d, 1)
    y = np.full((2, 4, 5, 5), np.nan, np.float32)
    assert lib.tg_cuda_conv2d_tf32(ptr(x), ptr(w), ptr(y), ctypes.byref(gm), None) == 0
    np.testing.assert_array_equal(y, 0)
    gy, w = rng.normal(2, 0, 5, 5), rng.normal(0, 3, 3, 3)
    gm = geom((2, 3, 5, 5), w.shape, s, p, d, 1)
    gx = np.full((2, 3, 5, 5), np.nan, np.float32)
    assert lib.tg_cuda_conv2d_backward_input_tf32(ptr(gy), ptr(w), ptr(gx), ctypes.byref(gm), None) == 0
    np.testing.assert_array_equal(gx, 0)
    # No images: the weight gradient is zeros.
    gy, x = rng.normal(0, 4, 5, 5), rng.normal(0, 3, 5, 5)
    gm = geom(x.shape, (4, 3, 3, 3), s, p, d, 1)
    np.testing.assert_array_equal(backward_weight(lib, gy, x, (4, 3, 3, 3), gm, True)[0], 0)


def test_no_data_races(tmp_path):
    # ThreadSanitizer cannot be loaded into Python here, so a C++ driver runs the kernels.
    try:
        exe = emulate.build_race_driver(SOURCES, tmp_path, driver="race_driver_conv.cpp")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("g++ cannot build the ThreadSanitizer driver")
    # TSan needs a fixed memory layout: without address-space randomisation where setarch exists.
    cmd = ["setarch", os.uname().machine, "-R", str(exe)] if shutil.which("setarch") else [str(exe)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    report = run.stdout + run.stderr
    assert "ThreadSanitizer" not in report, report[-4000:]
    assert run.returncode == 0 and "race driver done, error 0" in report, report[-4000:]


# ---- the backend's choice: v2 under set_float32_matmul_precision("high"), v1 otherwise --------

class FakeConvModule:
    """Stands in for tilegrad._cuda's conv bindings (their names, arguments and `version`) with
    the emulated kernels on NumPy arrays, and records the versions asked for."""

    def __init__(self, lib):
        self.lib, self.versions = lib, []

    def _suffix(self, version):
        self.versions.append(version)
        return {1: "", 2: "_tf32"}[version]

    def conv2d(self, x, w, stride, padding, dilation, groups, out, stream=0, version=0):
        gm = geom(x.shape, w.shape, stride, padding, dilation, groups)
        fn = getattr(self.lib, "tg_cuda_conv2d" + self._suffix(version))
        assert fn(ptr(x), ptr(w), ptr(out), ctypes.byref(gm), None) == 0

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
