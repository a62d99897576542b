"""tilegrad._cpu max_pool2d / avg_pool2d and their backward kernels against the float64 reference
kernels: ragged planes around the vector widths, strides 1 and 2 (vector interior) and 3 (scalar),
padding, dilation, ceil mode, every divisor rule, ties and NaN, empty batches, planes too big for
the vector path's float indices, each ISA path and thread count; then binding misuse."""

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from . import isa_paths  # noqa: E402
from tilegrad.backends import cpu, reference  # noqa: E402

from .test_bindings import f32, raises_naming  # noqa: E402

REF = reference.KERNELS

# (x shape, kernel, stride, padding, dilation, ceil_mode)
CASES = [
    ((2, 3, 13, 17), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((1, 2, 9, 41), (3, 3), (1, 1), (1, 1), (1, 1), True),
    ((2, 2, 16, 16), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 3, 15, 33), (2, 2), (2, 2), (0, 0), (1, 1), True),     # ceil mode adds a last window
    ((1, 1, 11, 37), (3, 2), (2, 2), (1, 1), (2, 2), True),     # dilation
    ((1, 2, 10, 50), (5, 4), (3, 3), (2, 2), (1, 1), True),     # stride 3: scalar path
    ((2, 1, 7, 70), (2, 3), (1, 2), (1, 1), (1, 3), False),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((3, 2, 5, 8), (5, 8), (1, 1), (0, 0), (1, 1), False),      # one window covers the plane
    ((1, 1, 4, 90), (1, 3), (1, 1), (0, 1), (1, 1), True),
    ((0, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),      # empty batch
    ((2, 64, 28, 29), (3, 3), (2, 2), (1, 1), (1, 1), True),    # big enough for threads
    ((1, 2, 6, 6), (2, 2), (1, 1), (1, 1), (1, 1), False),      # padding = kernel / 2
]
IDS = [f"x{c[0]}k{c[1]}s{c[2]}p{c[3]}d{c[4]}{'ceil' if c[5] else ''}" for c in CASES]
AVG_CASES = [c for c in CASES if c[4] == (1, 1)]
AVG_IDS = [i for i, c in zip(IDS, CASES) if c[4] == (1, 1)]
DIVISORS = [(True, None), (False, None), (True, 3), (False, 7)]


def out_shape(xs, k, s, p, d, c):
    return REF["max_pool2d"](np.zeros(xs), k, s, p, d, c)[0].shape


def native_max(x, k, s, p, d, c):
    shape = out_shape(x.shape, k, s, p, d, c)
    y, arg = np.full(shape, np.nan, np.float32), np.full(shape, -7, np.int64)
    _cpu.max_pool2d(x, k, s, p, d, c, y, arg)
    return y, arg


def check_max(x, gy, k, s, p, d, c, what):
    y, arg = native_max(x, k, s, p, d, c)
    want_y, want_arg = REF["max_pool2d"](x.astype(np.float64), k, s, p, d, c)
    np.testing.assert_array_equal(y, want_y.astype(np.float32), err_msg=what + " y")
    np.testing.assert_array_equal(arg, want_arg, err_msg=what + " arg")
    gx = np.full(x.shape, np.nan, np.float32)
    _cpu.max_pool2d_backward(gy, arg, k, s, p, d, c, gx)
    want = REF["max_pool2d_backward"](gy.astype(np.float64), want_arg, x.shape, k, s, p, d, c)
    np.testing.assert_allclose(gx, want, rtol=1e-6, atol=1e-6, err_msg=what + " gx")


def check_avg(x, gy, k, s, p, c, include, override, what):
    y = np.full(gy.shape, np.nan, np.float32)
    _cpu.avg_pool2d(x, k, s, p, c, include, override, y)
    want = REF["avg_pool2d"](x.astype(np.float64), k, s, p, c, include, override)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6, err_msg=what + " y")
    gx = np.full(x.shape, np.nan, np.float32)
    _cpu.avg_pool2d_backward(gy, k, s, p, c, include, override, gx)
    want = REF["avg_pool2d_backward"](gy.astype(np.float64), x.shape, k, s, p, c, include, override)
    np.testing.assert_allclose(gx, want, rtol=1e-5, atol=1e-6, err_msg=what + " gx")


@pytest.mark.parametrize("xs,k,s,p,d,c", CASES, ids=IDS)
def test_max_pool2d(rng, xs, k, s, p, d, c):
    check_max(rng.normal(*xs), rng.normal(*out_shape(xs, k, s, p, d, c)), k, s, p, d, c, f"max_pool2d {rng}")


@pytest.mark.parametrize("xs,k,s,p,d,c", AVG_CASES, ids=AVG_IDS)
@pytest.mark.parametrize("include,override", DIVISORS, ids=["pad", "nopad", "div3", "nopad-div7"])
def test_avg_pool2d(rng, xs, k, s, p, d, c, include, override):
    gy = rng.normal(*out_shape(xs, k, s, p, d, c))
    check_avg(rng.normal(*xs), gy, k, s, p, c, include, override, f"avg_pool2d {rng}")


@pytest.mark.parametrize("xs,k,s,p,d,c", CASES[:7], ids=IDS[:7])
def test_max_pool2d_ties_pick_the_first_in_window_order(rng, xs, k, s, p, d, c):
    # After a ReLU most windows tie at zero: every backend must pick the same cell (PyTorch's).
    x = np.maximum(rng.normal(*xs), 0).astype(np.float32)
    x[..., ::3, ::2] = 0.5
    check_max(x, rng.normal(*out_shape(xs, k, s, p, d, c)), k, s, p, d, c, f"ties {rng}")


@pytest.mark.parametrize("xs,k,s,p,d,c", CASES[:7], ids=IDS[:7])
def test_max_pool2d_nan_wins(rng, xs, k, s, p, d, c):
    x = rng.normal(*xs)
    flat = x.reshape(-1)
    flat[rng.gen.permutation(flat.size)[: max(1, flat.size // 9)]] = np.nan
    y, arg = native_max(x, k, s, p, d, c)
    want_y, want_arg = REF["max_pool2d"](x.astype(np.float64), k, s, p, d, c)
    np.testing.assert_array_equal(y, want_y.astype(np.float32), err_msg=str(rng))  # NaNs compare equal here
    np.testing.assert_array_equal(arg, want_arg, err_msg=str(rng))
    assert np.isnan(y).any(), rng


def test_max_pool2d_plane_beyond_float_indices(rng):
    # 4098 * 4098 cells > 2^24: the vector path's float indices would round, the scalar path runs.
    h = w = 4098
    x = rng.normal(1, 1, h, w)
    y, arg = native_max(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    blocks = x.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
    pick = blocks.argmax(-1)
    rows = np.arange(h // 2)[:, None] * 2 + pick // 2
    cols = np.arange(w // 2)[None, :] * 2 + pick % 2
    np.testing.assert_array_equal(y[0, 0], blocks.max(-1), err_msg=str(rng))
    np.testing.assert_array_equal(arg[0, 0], rows * w + cols, err_msg=str(rng))


def test_results_do_not_depend_on_the_call_history(rng):
    # Same inputs twice, other sizes in between: bit-identical (no state kept between calls).
    xs, k, s, p, d, c = CASES[0]
    x = rng.normal(*xs)
    first = native_max(x, k, s, p, d, c)
    for other in CASES[1:4]:
        native_max(rng.normal(*other[0]), *other[1:])
    again = native_max(x, k, s, p, d, c)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.native import test_cpu_pool as t
import tilegrad._cpu as cpu
gen = np.random.default_rng(int(sys.argv[1]))
failures = []
for xs, k, s, p, d, c in t.CASES:
    x = gen.standard_normal(xs, dtype=np.float32)
    gy = gen.standard_normal(t.out_shape(xs, k, s, p, d, c), dtype=np.float32)
    try:
        t.check_max(x, gy, k, s, p, d, c, f"max {xs}")
        if d == (1, 1):
            for include, override in t.DIVISORS:
                t.check_avg(x, gy, k, s, p, c, include, override, f"avg {xs} {include} {override}")
    except AssertionError as e:
        failures.append(str(e)[:300])
print(json.dumps({"isa": cpu.isa(), "threads": cpu.num_threads(), "failures": failures}))
"""


@pytest.mark.parametrize("isa,threads", isa_paths.CASES, ids=isa_paths.IDS)
def test_each_isa_path(rng, isa, threads):
    isa_paths.check_path(_CHILD, rng, isa, threads)


# ---- the backend wrappers --------------------------------------------------------------------

def test_backend_runs_native_and_falls_back(rng):
    x = rng.normal(2, 3, 9, 10)
    y, arg = cpu.max_pool2d(x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    assert arg.dtype == np.int64
    np.testing.assert_array_equal(arg, REF["max_pool2d"](x, (3, 3), (2, 2), (1, 1), (1, 1), True)[1])
    # float64, and a window that dilation puts entirely in the padding: the reference runs
    x64 = x.astype(np.float64)
    assert cpu.max_pool2d(x64, (2, 2), (2, 2), (0, 0), (1, 1), False)[0].dtype == np.float64
    tiny = rng.normal(1, 1, 1, 1)
    want = REF["max_pool2d"](tiny, (2, 2), (1, 1), (2, 2), (3, 3), False)
    got = cpu.max_pool2d(tiny, (2, 2), (1, 1), (2, 2), (3, 3), False)
    assert got[1].shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(got[1], want[1])
    # a negative divisor_override (PyTorch divides by it) is not the kernel's: the reference runs
    np.testing.assert_allclose(cpu.avg_pool2d(x, (2, 2), (2, 2), (0, 0), False, True, -3),
                               REF["avg_pool2d"](x, (2, 2), (2, 2), (0, 0), False, True, -3), rtol=1e-6)


def test_backend_backward_accepts_either_producer(rng):
    # The reference and the native forward produce the same indices, so either backward reads them.
    x = rng.normal(2, 3, 11, 12)
    gy = rng.normal(*out_shape(x.shape, (3, 3), (2, 2), (1, 1), (1, 1), False))
    _, arg = REF["max_pool2d"](x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_allclose(cpu.max_pool2d_backward(gy, arg, x.shape, (3, 3), (2, 2), (1, 1), (1, 1), False),
                               REF["max_pool2d_backward"](gy, arg, x.shape, (3, 3), (2, 2), (1, 1), (1, 1), False),
                               rtol=1e-5, atol=1e-5)


# ---- binding misuse --------------------------------------------------------------------------

def _max_args():
    return {"x": f32(2, 3, 7, 9), "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1),
            "ceil_mode": False, "y": f32(2, 3, 4, 5), "arg": np.zeros((2, 3, 4, 5), np.int64)}


def _max_bwd_args():
    return {"gy": f32(2, 3, 4, 5), "arg": np.zeros((2, 3, 4, 5), np.int64), "kernel": (3, 3), "stride": (2, 2),
            "padding": (1, 1), "dilation": (1, 1), "ceil_mode": False, "gx": f32(2, 3, 7, 9)}


def _avg_args():
    return {"x": f32(2, 3, 7, 9), "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
            "count_include_pad": False, "divisor_override": None, "y": f32(2, 3, 4, 5)}


def _avg_bwd_args():
    return {"gy": f32(2, 3, 4, 5), "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
            "count_include_pad": True, "divisor_override": 2, "gx": f32(2, 3, 7, 9)}


GOOD = {"max_pool2d": _max_args, "max_pool2d_backward": _max_bwd_args, "avg_pool2d": _avg_args,
        "avg_pool2d_backward": _avg_bwd_args}
OUTS = {"max_pool2d": ("y", "arg"), "max_pool2d_backward": ("gx",), "avg_pool2d": ("y",),
        "avg_pool2d_backward": ("gx",)}
ARRAYS = [(fn, name) for fn, make in GOOD.items() for name, v in make().items() if isinstance(v, np.ndarray)]


def call(fn, args):
    getattr(_cpu, fn)(*args.values())


def test_good_arguments_work():
    for fn, make in GOOD.items():
        call(fn, make())


@pytest.mark.parametrize("fn,name", ARRAYS)
def test_wrong_dtype(fn, name):
    args = GOOD[fn]()
    want = "int64" if name == "arg" else "float32"
    for dtype in (np.float64, np.int32, np.float16, np.dtype(">i8") if name == "arg" else np.dtype(">f4")):
        args[name] = GOOD[fn]()[name].astype(dtype)
        with raises_naming(TypeError, fn, "_cpu", f"'{name}'", want, str(np.dtype(dtype))):
            call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAYS)
@pytest.mark.parametrize("bad", [None, [[1.0, 2.0]], 3.0, "x"], ids=repr)
def test_not_an_array(fn, name, bad):
    args = GOOD[fn]()
    args[name] = bad
    with raises_naming(TypeError, fn, "_cpu", f"'{name}'"):
        call(fn, args)


def non_contiguous(arr, kind):
    """A view with arr's shape and dtype that is not C-contiguous."""
    if kind == "step2":
        return np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), arr.dtype)[..., ::2]
    if kind == "reversed":
        return np.ascontiguousarray(arr)[::-1]
    if kind == "fortran":
        return np.asfortranarray(arr)
    return np.ascontiguousarray(arr.T).T


@pytest.mark.parametrize("fn,name", ARRAYS)
@pytest.mark.parametrize("kind", ["step2", "reversed", "fortran", "transposed"])
def test_non_contiguous(fn, name, kind):
    args = GOOD[fn]()
    view = non_contiguous(args[name], kind)
    if view.flags.c_contiguous:
        pytest.skip(f"a {kind} view is still C-contiguous")
    args[name] = view
    with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "C-contiguous"):
        call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_readonly_outputs(fn):
    for name in OUTS[fn]:
        args = GOOD[fn]()
        args[name].flags.writeable = False
        with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "writeable"):
            call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_shapes_must_match_the_geometry(fn):
    # The forward's input and the backward's gx fix the geometry; the others must fit it.
    fitted = [n for n, v in GOOD[fn]().items() if isinstance(v, np.ndarray) and n not in ("x", "gx")]
    for name in fitted:
        for shape in [(2, 3, 4, 4), (2, 3, 5, 5), (3, 3, 4, 5), (2, 3, 20)]:
            args = GOOD[fn]()
            args[name] = np.zeros(shape, args[name].dtype)
            with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "(2, 3, 4, 5)", str(shape)):
                call(fn, args)
    for name in ("x", "gx"):
        if name in GOOD[fn]():
            args = GOOD[fn]()
            args[name] = f32(2, 3, 7 * 9)
            with raises_naming(ValueError, fn, "_cpu", "(N, C, H, W)", "(2, 3, 63)"):
                call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_bad_geometry(fn):
    bad = [("kernel", (0, 3), ValueError, ">= 1"), ("kernel", 3, TypeError, "pair"),
           ("stride", (2, 0), ValueError, ">= 1"),
           ("padding", (-1, 0), ValueError, ">= 0"), ("padding", (1.0, 1), TypeError, "int"),
           ("ceil_mode", 1, TypeError, "bool"), ("ceil_mode", None, TypeError, "bool"),
           ("kernel", (10, 3), ValueError, "larger than the padded input")]
    if fn.startswith("max"):
        bad += [("dilation", (1, 0), ValueError, ">= 1"), ("dilation", None, TypeError, "dilation")]
    else:
        bad += [("count_include_pad", "yes", TypeError, "bool"), ("divisor_override", 0, ValueError, ">= 1"),
                ("divisor_override", 2.5, TypeError, "int")]
    for name, value, exc, fragment in bad:
        args = GOOD[fn]()
        args[name] = value
        with raises_naming(exc, fn, "_cpu", fragment):
            call(fn, args)


@pytest.mark.parametrize("fn", ["max_pool2d", "max_pool2d_backward"])
def test_windows_in_the_padding_rejected(fn):
    # plane 1 x 1, kernel 2 dilated by 3, padding 2: the first window's taps are -2 and 1
    args = GOOD[fn]()
    img, out = f32(1, 1, 1, 1), (1, 1, 2, 2)
    args.update(kernel=(2, 2), stride=(1, 1), padding=(2, 2), dilation=(3, 3))
    if fn == "max_pool2d":
        args.update(x=img, y=f32(*out), arg=np.zeros(out, np.int64))
    else:
        args.update(gx=img, gy=f32(*out), arg=np.zeros(out, np.int64))
    with raises_naming(ValueError, fn, "_cpu", "padding"):
        call(fn, args)


def test_backward_rejects_indices_outside_the_plane():
    for bad in (63, -1, 1 << 40):
        args = _max_bwd_args()
        args["arg"][1, 2, 3, 4] = bad
        with raises_naming(IndexError, "max_pool2d_backward", "_cpu", "[0, 63)"):
            call("max_pool2d_backward", args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_outputs_must_not_alias_inputs(fn):
    args = GOOD[fn]()
    inputs = [n for n, v in args.items() if isinstance(v, np.ndarray) and n not in OUTS[fn]]
    for out in OUTS[fn]:
        for other in inputs + [o for o in OUTS[fn] if o != out]:
            args = GOOD[fn]()
            buf = np.zeros(max(args[out].nbytes, args[other].nbytes) + 64, np.uint8)
            args[out] = buf[:args[out].nbytes].view(args[out].dtype).reshape(args[out].shape)
            args[other] = buf[:args[other].nbytes].view(args[other].dtype).reshape(args[other].shape)
            with raises_naming(ValueError, fn, "_cpu", "share memory"):
                call(fn, args)
