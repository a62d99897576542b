"""tilegrad._cpu softmax, activation and layer-norm kernels against float64 NumPy: ragged sizes
(size 0 and 1, tails of every vector width), every dim of the softmax, special values, in-place
use, and every instruction-set path this CPU can run (in subprocesses, as in
test_cpu_kernels.py)."""
import math
import warnings

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from . import isa_paths  # noqa: E402


# --- float64 definitions (the reference kernels' formulas, in float64) ---------------------

def softmax64(x, dim):
    x = x.astype(np.float64)
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        return e / e.sum(axis=dim, keepdims=True)


def log_softmax64(x, dim):
    x = x.astype(np.float64)
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        s = x - x.max(axis=dim, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=dim, keepdims=True))


def ndtr64(x):
    """Phi(x) in float64 with relative accuracy in both tails."""
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return 0.5 * erfc(-x / math.sqrt(2.0))


def act64(name, x, slope=0.01):
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-x))
        if name == "tanh":
            return np.tanh(x)
        if name == "silu":
            return x / (1.0 + np.exp(-x))
        if name == "gelu":
            return x * ndtr64(x)
        if name == "gelu_tanh":
            u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
            return x / (1.0 + np.exp(-2.0 * u))
        if name == "leaky_relu":
            return np.where(x > 0, x, x * np.float64(np.float32(slope)))
    raise AssertionError(name)


def act_backward64(name, a, gy, slope=0.01):
    """a is y for sigmoid and tanh, x otherwise."""
    a, gy = a.astype(np.float64), gy.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            return gy * a * (1 - a)
        if name == "tanh":
            return gy * (1 - a * a)
        if name == "silu":
            s = 1.0 / (1.0 + np.exp(-a))
            return gy * s * (1 + a * (1 - s))
        if name == "gelu":
            return gy * (ndtr64(a) + a * np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi))
        if name == "gelu_tanh":
            k = math.sqrt(2 / math.pi)
            s = 1.0 / (1.0 + np.exp(-2.0 * k * (a + 0.044715 * a ** 3)))
            return gy * (s + 2 * a * s * (1 - s) * k * (1 + 3 * 0.044715 * a * a))
        if name == "leaky_relu":
            return np.where(a > 0, gy, gy * np.float64(np.float32(slope)))
    raise AssertionError(name)


def run_act(name, x, slope=0.01, out=None):
    out = np.full(x.shape, np.nan, np.float32) if out is None else out
    if name == "gelu":
        _cpu.gelu(x, "none", out)
    elif name == "gelu_tanh":
        _cpu.gelu(x, "tanh", out)
    elif name == "leaky_relu":
        _cpu.leaky_relu(x, slope, out)
    else:
        getattr(_cpu, name)(x, out)
    return out


def run_act_backward(name, a, gy, slope=0.01, out=None):
    out = np.full(a.shape, np.nan, np.float32) if out is None else out
    if name == "gelu":
        _cpu.gelu_backward(a, gy, "none", out)
    elif name == "gelu_tanh":
        _cpu.gelu_backward(a, gy, "tanh", out)
    elif name == "leaky_relu":
        _cpu.leaky_relu_backward(a, gy, slope, out)
    else:
        getattr(_cpu, name + "_backward")(a, gy, out)
    return out


def assert_true(ok, what):
    assert ok, what


def assert_close(got, want, rtol, atol, what):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


# --- softmax ------------------------------------------------------------------------------

SOFTMAX_CASES = [
    ((0,), 0), ((1,), 0), ((7,), -1), ((33,), 0), ((257,), -1), ((3, 5), 0), ((3, 5), 1),
    ((65, 127), 0), ((65, 127), -1), ((2, 0, 3), 1), ((2, 0, 3), 2), ((5, 1, 7), 1),
    ((4, 129, 3), 1), ((4, 129, 3), 0), ((2, 70, 130), 1), ((2, 70, 130), -1), ((3, 2, 9, 65), 2),
    ((1, 1), 1), ((300, 2), 0), ((2, 3000), 1), ((1000, 17), 0), ((257, 300), 0), ((300, 257), 1),
]


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax_forward_backward(rng, log, shape, dim):
    x = rng.normal(*shape) * 3
    name = "log_softmax" if log else "softmax"
    y = np.full(shape, np.nan, np.float32)
    getattr(_cpu, name)(x, dim, y)
    want = (log_softmax64 if log else softmax64)(x, dim)
    assert_close(y, want, 2e-5, 1e-6 if not log else 1e-5, f"{name} {shape} dim={dim} {rng}")
    gy = rng.normal(*shape)
    gx = np.full(shape, np.nan, np.float32)
    getattr(_cpu, name + "_backward")(y, gy, dim, gx)
    y64, gy64 = y.astype(np.float64), gy.astype(np.float64)
    if log:
        want = gy64 - np.exp(y64) * gy64.sum(axis=dim, keepdims=True)
    else:
        want = y64 * (gy64 - (gy64 * y64).sum(axis=dim, keepdims=True))
    scale = 1e-5 * (1 + np.abs(gy64).sum(axis=dim, keepdims=True))
    assert np.all(np.abs(gx - want) <= scale), f"{name}_backward {shape} dim={dim} {rng}"


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_masked_and_special_rows(log, dim):
    # -inf entries (attention masks) get probability 0; an all -inf row, a NaN or a +inf
    # gives a NaN row, as in the reference.
    x = np.random.default_rng(0).standard_normal((6, 37)).astype(np.float32)
    x[0, ::3] = -np.inf
    x[1, :] = -np.inf
    x[2, 5] = np.nan
    x[3, 7] = np.inf
    x[4, :] = 80.0  # large but equal: the max shift keeps it finite
    x[5, 0] = -1e30
    if dim == 0:
        x = np.ascontiguousarray(x.T)
    name = "log_softmax" if log else "softmax"
    y = np.empty_like(x)
    getattr(_cpu, name)(x, dim, y)
    want = (log_softmax64 if log else softmax64)(x, dim)
    assert_close(y, want, 2e-5, 1e-6, f"{name} special rows dim={dim}")


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_in_place(rng, dim):
    x = rng.normal(33, 65)
    for name, ref in (("softmax", softmax64), ("log_softmax", log_softmax64)):
        buf = x.copy()
        getattr(_cpu, name)(buf, dim, buf)
        assert_close(buf, ref(x, dim), 2e-5, 1e-5, f"{name} in place {rng}")
    y = np.empty_like(x)
    _cpu.softmax(x, dim, y)
    gy = rng.normal(33, 65)
    want = np.empty_like(x)
    _cpu.softmax_backward(y, gy, dim, want)
    _cpu.softmax_backward(y, gy, dim, gy)  # gx written over gy
    np.testing.assert_array_equal(gy, want, err_msg=str(rng))


# --- activations --------------------------------------------------------------------------

ACTS = ["sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "leaky_relu"]
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 33, 63, 64, 65, 127, 257, 1000, 100_003]


def _act_input(rng, n, scale=4.0):
    return rng.normal(n) * np.float32(scale)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("n", SIZES)
def test_activation_forward(rng, name, n):
    x = _act_input(rng, n)
    assert_close(run_act(name, x), act64(name, x), 1e-5, 1e-7, f"{name} n={n} {rng}")


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("n", SIZES)
def test_activation_backward(rng, name, n):
    x = _act_input(rng, n)
    a = run_act(name, x) if name in ("sigmoid", "tanh") else x
    gy = rng.normal(n)
    # Near a zero of the derivative (silu, gelu: x ~ -1.28 / -0.75) the relative error of a
    # float32 formula is unbounded; the absolute error stays at rounding level.
    assert_close(run_act_backward(name, a, gy), act_backward64(name, a, gy), 1e-5, 1e-6,
                 f"{name}_backward n={n} {rng}")


@pytest.mark.parametrize("name", ACTS)
def test_activation_special_values(name):
    x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30, 1e-40, 30.0, -30.0, 90.0, -90.0,
                  200.0, -200.0, 0.625, -0.625, 0.62499994, 9.0, -9.0, 12.0, -12.0], np.float32)
    got = run_act(name, x)
    want = act64(name, x)
    # x -> -inf: the reference formulas give NaN (-inf * 0) for silu, gelu, gelu_tanh.
    assert_close(got, want, 1e-5, 1e-30, f"{name} special values {x}")
    assert np.isnan(got[2]), f"{name}(nan) must be nan"
    gy = np.ones_like(x)
    a = got if name in ("sigmoid", "tanh") else x
    gb = run_act_backward(name, a, gy)
    assert_close(gb, act_backward64(name, a, gy), 1e-5, 1e-30, f"{name}_backward special values")


def test_activation_accuracy_in_ulps():
    # exp-based kernels stay within a few float32 ulps of the float64 value wherever the result
    # is a normal float (the derivative zeros of silu/gelu excluded: see the backward test).
    # gelu_tanh's exponent, 2 sqrt(2/pi) (x + 0.044715 x^3), is itself rounded: for x < -2 the
    # function's own conditioning (|x f'/f| ~ 0.43 |x|^3) amplifies that beyond a few ulps.
    x = np.linspace(-80, 80, 200_001, dtype=np.float32)
    for name in ("sigmoid", "tanh", "silu", "gelu", "gelu_tanh"):
        got = run_act(name, x).astype(np.float64)
        want = act64(name, x)
        ok = (np.abs(want) > 1e-37) & ((x > -2) if name == "gelu_tanh" else True)
        ulps = np.abs(got[ok] - want[ok]) / np.spacing(np.abs(want[ok]).astype(np.float32))
        assert ulps.max() <= 8, f"{name}: {ulps.max():.1f} ulp at x={x[ok][np.argmax(ulps)]}"


@pytest.mark.parametrize("name", ACTS)
def test_activation_in_place(rng, name):
    x = _act_input(rng, 1001)
    want = run_act(name, x)
    buf = x.copy()
    run_act(name, buf, out=buf)
    np.testing.assert_array_equal(buf, want, err_msg=f"{name} {rng}")
    gy = rng.normal(1001)
    a = want if name in ("sigmoid", "tanh") else x
    want_b = run_act_backward(name, a, gy)
    run_act_backward(name, a, gy, out=gy)
    np.testing.assert_array_equal(gy, want_b, err_msg=f"{name}_backward {rng}")


@pytest.mark.parametrize("slope", [0.0, 0.2, -1.5, 1.0])
def test_leaky_relu_slopes(rng, slope):
    x = rng.normal(1003)
    x[:3] = [0.0, -0.0, np.nan]
    got = run_act("leaky_relu", x, slope)
    want = np.where(x > 0, x, x * np.float32(slope))  # float32, like the reference kernel
    np.testing.assert_array_equal(got, want, err_msg=f"slope={slope} {rng}")
    gy = rng.normal(1003)
    want = np.where(x > 0, gy, gy * np.float32(slope))
    np.testing.assert_array_equal(run_act_backward("leaky_relu", x, gy, slope), want, err_msg=str(rng))


# --- layer norm ---------------------------------------------------------------------------

def _quiet(fn):
    """NumPy warns about the mean of an empty normalised shape (it is NaN, as it should be)."""
    def wrapped(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    return wrapped


@_quiet
def layer_norm64(x, w, b, n_dims, eps):
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - n_dims, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    y = (x - mean) * rstd
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y, mean, rstd


@_quiet
def layer_norm_backward64(x, w, mean, rstd, gy, n_dims):
    x, gy = x.astype(np.float64), gy.astype(np.float64)
    mean, rstd = mean.astype(np.float64), rstd.astype(np.float64)
    axes = tuple(range(x.ndim - n_dims, x.ndim))
    lead = tuple(range(x.ndim - n_dims))
    xhat = (x - mean) * rstd
    g = gy * w if w is not None else gy
    gx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return gx, (gy * xhat).sum(axis=lead), gy.sum(axis=lead)


LN_CASES = [((4, 6), 1), ((2, 3, 5), 2), ((3, 7), 1), ((1, 9), 1), ((0, 4), 1), ((5, 1), 1), ((7,), 1),
            ((3, 33), 2), ((17, 65), 1), ((2, 3, 129), 1), ((300, 1001), 1), ((64, 4096), 1), ((3, 0), 1)]


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,n_dims", LN_CASES)
def test_layer_norm(rng, shape, n_dims, affine):
    x = rng.normal(*shape) * 2 + 3
    norm_shape = shape[len(shape) - n_dims:]
    w = rng.normal(*norm_shape) if affine != "none" else None
    b = rng.normal(*norm_shape) if affine == "both" else None
    stat_shape = shape[:len(shape) - n_dims] + (1,) * n_dims
    y = np.full(shape, np.nan, np.float32)
    mean = np.full(stat_shape, np.nan, np.float32)
    rstd = np.full(stat_shape, np.nan, np.float32)
    _cpu.layer_norm(x, w, b, n_dims, 1e-5, y, mean, rstd)
    wy, wm, wr = layer_norm64(x, w, b, n_dims, 1e-5)
    what = f"layer_norm {shape} n_dims={n_dims} affine={affine} {rng}"
    assert_close(mean, wm, 1e-5, 1e-6, what + " mean")
    assert_close(rstd, wr, 1e-4, 1e-6, what + " rstd")
    assert_close(y, wy, 1e-4, 1e-5, what + " y")
    gy = rng.normal(*shape)
    gx = np.full(shape, np.nan, np.float32)
    gw = np.full(norm_shape, np.nan, np.float32)
    gb = np.full(norm_shape, np.nan, np.float32)
    _cpu.layer_norm_backward(x, w, mean, rstd, gy, n_dims, gx, gw, gb)
    wgx, wgw, wgb = layer_norm_backward64(x, w, mean, rstd, gy, n_dims)
    rows = max(1, int(np.prod(shape[:len(shape) - n_dims])))
    # A row of one element has var 0 and rstd = eps^-1/2 ~ 316, which scales rounding residue
    # (the compiler may fuse gy * w into the subtraction of its mean) by as much.
    assert_close(gx, wgx, 1e-4, 1e-5 * max(1.0, float(np.max(rstd, initial=1.0))), what + " gx")
    assert_close(gw, wgw, 1e-4, 1e-6 * rows, what + " gweight")
    assert_close(gb, wgb, 1e-4, 1e-6 * rows, what + " gbias")


def test_layer_norm_large_offset_keeps_variance(rng):
    # Two-pass statistics: a mean of 1e4 must not swamp a unit variance.
    x = rng.normal(64, 1001) + np.float32(1e4)
    y = np.empty_like(x)
    mean = np.empty((64, 1), np.float32)
    rstd = np.empty((64, 1), np.float32)
    _cpu.layer_norm(x, None, None, 1, 1e-5, y, mean, rstd)
    _, _, wr = layer_norm64(x, None, None, 1, 1e-5)
    assert_close(rstd, wr, 1e-3, 0, str(rng))


def test_layer_norm_backward_many_rows_threads(rng):
    # Enough rows that the per-thread gweight/gbias partial sums are used and added up.
    x = rng.normal(4096, 96)
    w = rng.normal(96)
    y, mean, rstd = np.empty_like(x), np.empty((4096, 1), np.float32), np.empty((4096, 1), np.float32)
    _cpu.layer_norm(x, w, None, 1, 1e-5, y, mean, rstd)
    gy = rng.normal(4096, 96)
    gx, gw, gb = np.empty_like(x), np.empty(96, np.float32), np.empty(96, np.float32)
    _cpu.layer_norm_backward(x, w, mean, rstd, gy, 1, gx, gw, gb)
    wgx, wgw, wgb = layer_norm_backward64(x, w, mean, rstd, gy, 1)
    assert_close(gw, wgw, 1e-4, 1e-3, str(rng))
    assert_close(gb, wgb, 1e-4, 1e-3, str(rng))


# --- every ISA path, in subprocesses ---------------------------------------------------------

_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.native import test_cpu_nn_kernels as t
import tilegrad._cpu as cpu

gen = np.random.default_rng(int(sys.argv[1]))
failures = []

def check(what, fn):
    try:
        fn()
    except AssertionError as e:
        failures.append(f"{what}: {str(e)[:300]}")

def normal(*shape):
    return gen.standard_normal(shape, dtype=np.float32)

for shape, dim in t.SOFTMAX_CASES:
    x = normal(*shape) * 3
    for name, ref in (("softmax", t.softmax64), ("log_softmax", t.log_softmax64)):
        y = np.full(shape, np.nan, np.float32)
        getattr(cpu, name)(x, dim, y)
        check(f"{name} {shape} {dim}", lambda: t.assert_close(y, ref(x, dim), 2e-5, 1e-5, ""))
        gy = normal(*shape)
        gx = np.full(shape, np.nan, np.float32)
        getattr(cpu, name + "_backward")(y, gy, dim, gx)
        y64, g64 = y.astype(np.float64), gy.astype(np.float64)
        if name == "softmax":
            want = y64 * (g64 - (g64 * y64).sum(axis=dim, keepdims=True))
        else:
            want = g64 - np.exp(y64) * g64.sum(axis=dim, keepdims=True)
        # the tolerance of the main test: the row sum's rounding grows with the row's |gy|
        scale = 1e-5 * (1 + np.abs(g64).sum(axis=dim, keepdims=True))
        check(f"{name}_backward {shape} {dim}", lambda: t.assert_true(np.all(np.abs(gx - want) <= scale), ""))
for name in t.ACTS:
    for n in t.SIZES:
        x = normal(n) * 4
        y = t.run_act(name, x)
        check(f"{name} n={n}", lambda: t.assert_close(y, t.act64(name, x), 1e-5, 1e-7, ""))
        a = y if name in ("sigmoid", "tanh") else x
        gy = normal(n)
        check(f"{name}_backward n={n}", lambda: t.assert_close(
            t.run_act_backward(name, a, gy), t.act_backward64(name, a, gy), 1e-5, 1e-6, ""))
for shape, n_dims in t.LN_CASES:
    x = normal(*shape) * 2 + 3
    ns = shape[len(shape) - n_dims:]
    w, b = normal(*ns), normal(*ns)
    st = shape[:len(shape) - n_dims] + (1,) * n_dims
    y, m, r = np.empty(shape, np.float32), np.empty(st, np.float32), np.empty(st, np.float32)
    cpu.layer_norm(x, w, b, n_dims, 1e-5, y, m, r)
    check(f"layer_norm {shape}", lambda: t.assert_close(y, t.layer_norm64(x, w, b, n_dims, 1e-5)[0], 1e-4, 1e-5, ""))
    gy = normal(*shape)
    gx, gw, gb = np.empty(shape, np.float32), np.empty(ns, np.float32), np.empty(ns, np.float32)
    cpu.layer_norm_backward(x, w, m, r, gy, n_dims, gx, gw, gb)
    wgx, wgw, wgb = t.layer_norm_backward64(x, w, m, r, gy, n_dims)
    rows = max(1, int(np.prod(st)))
    gx_tol = 1e-5 * max(1.0, float(np.max(r, initial=1.0)))
    check(f"layer_norm_backward {shape}", lambda: (t.assert_close(gx, wgx, 1e-4, gx_tol, "gx"),
          t.assert_close(gw, wgw, 1e-4, 1e-6 * rows, "gw"), t.assert_close(gb, wgb, 1e-4, 1e-6 * rows, "gb")))
print(json.dumps({"isa": cpu.isa(), "threads": cpu.num_threads(), "failures": failures}))
"""

@pytest.mark.parametrize("isa,threads", isa_paths.CASES, ids=isa_paths.IDS)
def test_each_isa_path(rng, isa, threads):
    isa_paths.check_path(_CHILD, rng, isa, threads)
