"""tilegrad._cpu.cross_entropy_forward / _backward against the float64 reference kernels: class
counts around the vector widths, weights, ignored rows (also an ignore_index that names a real
class), label smoothing from 0 to 1, extreme logits, enough rows for threads, each ISA path and
thread count; then the backend wrapper's fallbacks and binding misuse."""

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")
from . import isa_paths  # noqa: E402
from tilegrad.backends import cpu, reference  # noqa: E402

from .test_bindings import f32, raises_naming  # noqa: E402

REF_FWD = reference.KERNELS["cross_entropy_forward"]
REF_BWD = reference.KERNELS["cross_entropy_backward"]

# (rows, classes, weighted, ignore_index, label_smoothing)
CASES = [
    (5, 1, False, -100, 0.0),
    (7, 3, True, -100, 0.1),
    (3, 8, False, 2, 0.0),
    (9, 9, True, -1, 0.5),
    (4, 16, True, -100, 1.0),
    (6, 17, False, -100, 0.25),
    (2, 31, True, 5, 0.0),
    (11, 33, False, -100, 0.05),
    (1, 1000, True, -100, 0.1),
    (70, 1001, False, 7, 0.2),
    (130, 1000, True, -100, 0.1),   # enough logits for threads
    (0, 10, True, -100, 0.1),       # no rows
]
IDS = [f"{r}x{c}{'w' if w else ''}i{i}e{e}" for r, c, w, i, e in CASES]


def make(gen, rows, classes, weighted, ignore, scale=3.0):
    """float32 logits, int64 targets with about a fifth of the rows ignored, float32 weight or None."""
    x = (gen.standard_normal((rows, classes)) * scale).astype(np.float32)
    t = gen.integers(0, classes, rows)
    if 0 <= ignore < classes:
        t[t == ignore] = (ignore + 1) % classes if classes > 1 else ignore
    t[gen.random(rows) < 0.2] = ignore
    w = gen.uniform(0.5, 2.0, classes).astype(np.float32) if weighted else None
    return x, t, w


def native(x, t, w, ignore, eps, grow):
    rows = x.shape[0]
    loss, lse = np.full(rows, np.nan, np.float32), np.full(rows, np.nan, np.float32)
    _cpu.cross_entropy_forward(x, t, w, ignore, eps, loss, lse)
    gx = np.full(x.shape, np.nan, np.float32)
    _cpu.cross_entropy_backward(x, lse, t, w, ignore, eps, grow, gx)
    return loss, lse, gx


def check(x, t, w, ignore, eps, grow, what):
    loss, lse, gx = native(x, t, w, ignore, eps, grow)
    w64 = None if w is None else w.astype(np.float64)
    want_loss, want_lse = REF_FWD(x.astype(np.float64), t, w64, ignore, eps)
    want_gx = REF_BWD(x.astype(np.float64), want_lse, t, w64, ignore, eps, grow.astype(np.float64))
    # float32 rounding of lse (a few ulps of its size) is what the loss and the softmax inherit
    np.testing.assert_allclose(lse, want_lse, rtol=1e-6, atol=1e-6, err_msg=what + " lse")
    scale = 1e-6 * (np.abs(want_lse) + np.abs(x).max(axis=1, initial=0) + 1)
    wmax = 1.0 if w is None else float(w.max())
    assert np.all(np.abs(loss - want_loss) <= 4 * scale * wmax), f"{what} loss: {np.abs(loss - want_loss).max()}"
    assert np.all(loss[t == ignore] == 0), what
    bad = np.abs(gx - want_gx) > 1e-5 * (np.abs(grow)[:, None] * wmax * (1 + scale[:, None] * 1e6))
    assert not bad.any(), f"{what} gx: {bad.sum()} off, max err {np.abs(gx - want_gx).max():.3g}"
    assert np.all(gx[t == ignore] == 0), what


@pytest.mark.parametrize("rows,classes,weighted,ignore,eps", CASES, ids=IDS)
def test_cross_entropy(rng, rows, classes, weighted, ignore, eps):
    x, t, w = make(rng.gen, rows, classes, weighted, ignore)
    check(x, t, w, ignore, eps, rng.normal(rows), f"cross_entropy {rng}")


@pytest.mark.parametrize("scale", [30.0, 1000.0])
def test_extreme_logits_stay_finite(rng, scale):
    # exp would overflow (or underflow to an all-zero sum) without subtracting the row maximum
    x, t, w = make(rng.gen, 40, 37, True, -100, scale)
    loss, lse, gx = native(x, t, w, -100, 0.1, rng.normal(40))
    assert np.isfinite(loss).all() and np.isfinite(lse).all() and np.isfinite(gx).all(), rng
    check(x, t, w, -100, 0.1, rng.normal(40), f"scale {scale} {rng}")


def test_all_rows_ignored(rng):
    x, _, w = make(rng.gen, 6, 5, True, -100)
    t = np.full(6, -100)
    loss, lse, gx = native(x, t, w, -100, 0.3, rng.normal(6))
    assert (loss == 0).all() and (gx == 0).all(), rng
    np.testing.assert_allclose(lse, REF_FWD(x.astype(np.float64), t, None, -100, 0.3)[1], rtol=1e-6)


def test_gradient_sums_to_zero_without_weights(rng):
    # softmax and the smoothed one-hot both sum to 1, so each row of the gradient sums to 0
    x, t, _ = make(rng.gen, 50, 103, False, -100)
    _, _, gx = native(x, t, None, -100, 0.3, rng.normal(50))
    np.testing.assert_allclose(gx.sum(axis=1), 0, atol=1e-5, err_msg=str(rng))


_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.native import test_cpu_loss as t
import tilegrad._cpu as cpu
gen = np.random.default_rng(int(sys.argv[1]))
failures = []
for rows, classes, weighted, ignore, eps in t.CASES:
    x, tg, w = t.make(gen, rows, classes, weighted, ignore)
    try:
        t.check(x, tg, w, ignore, eps, gen.standard_normal(rows).astype(np.float32), f"{rows}x{classes}")
    except AssertionError as e:
        failures.append(str(e)[:300])
print(json.dumps({"isa": cpu.isa(), "threads": cpu.num_threads(), "failures": failures}))
"""


@pytest.mark.parametrize("isa,threads", isa_paths.CASES, ids=isa_paths.IDS)
def test_each_isa_path(rng, isa, threads):
    isa_paths.check_path(_CHILD, rng, isa, threads)


# ---- the backend wrappers --------------------------------------------------------------------

def test_backend_converts_targets_and_falls_back(rng):
    x, t, w = make(rng.gen, 12, 7, True, -100)
    want = REF_FWD(x, t, w, -100, 0.1)
    for targets in (t.astype(np.int32), t[::-1].copy()[::-1]):  # other int dtype, non-contiguous
        got = cpu.cross_entropy_forward(x, targets, w, -100, 0.1)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6, err_msg=str(rng))
    # float64 logits, or a float64 weight with float32 logits: the reference runs
    assert cpu.cross_entropy_forward(x.astype(np.float64), t, None, -100, 0.0)[0].dtype == np.float64
    got = cpu.cross_entropy_forward(x, t, w.astype(np.float64), -100, 0.0)
    np.testing.assert_allclose(got[0], REF_FWD(x, t, w.astype(np.float64), -100, 0.0)[0], rtol=1e-6)
    bad = t.copy()
    bad[rng.gen.integers(0, len(bad))] = 7  # (always one: ignored rows may by chance be none)
    with pytest.raises(IndexError, match="out of bounds for 7 classes"):
        cpu.cross_entropy_forward(x, bad, w, -100, 0.0)


# ---- binding misuse --------------------------------------------------------------------------

def _fwd():
    return {"logits": f32(4, 5), "target": np.array([0, 4, -100, 2]), "weight": f32(5), "ignore_index": -100,
            "label_smoothing": 0.1, "loss": f32(4), "lse": f32(4)}


def _bwd():
    return {"logits": f32(4, 5), "lse": f32(4), "target": np.array([0, 4, -100, 2]), "weight": None,
            "ignore_index": -100, "label_smoothing": 0.0, "grow": f32(4), "glogits": f32(4, 5)}


GOOD = {"cross_entropy_forward": _fwd, "cross_entropy_backward": _bwd}
OUTS = {"cross_entropy_forward": ("loss", "lse"), "cross_entropy_backward": ("glogits",)}
ARRAYS = [(fn, name) for fn, make_args in GOOD.items() for name, v in make_args().items()
          if isinstance(v, np.ndarray)] + [("cross_entropy_backward", "weight")]


def call(fn, args):
    getattr(_cpu, fn)(*args.values())


def _good(fn, name):
    args = GOOD[fn]()
    if args[name] is None:
        args[name] = f32(5)
    return args


def test_good_arguments_work():
    for fn, make_args in GOOD.items():
        call(fn, make_args())
        args = make_args()
        args["target"] = np.full(4, -100)
        call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAYS)
def test_wrong_dtype(fn, name):
    want = "int64" if name == "target" else "float32"
    for dtype in (np.float64, np.int32, np.float16, np.dtype(">i8") if name == "target" else np.dtype(">f4")):
        args = _good(fn, name)
        args[name] = args[name].astype(dtype)
        with raises_naming(TypeError, fn, "_cpu", f"'{name}'", want, str(np.dtype(dtype))):
            call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAYS)
def test_not_an_array_or_not_contiguous(fn, name):
    for bad in ([1.0, 2.0], 3.0, "x") + ((None,) if name != "weight" else ()):
        args = _good(fn, name)
        args[name] = bad
        with raises_naming(TypeError, fn, "_cpu", f"'{name}'"):
            call(fn, args)
    args = _good(fn, name)
    arr = args[name]
    args[name] = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), arr.dtype)[..., ::2]
    with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "C-contiguous"):
        call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAYS)
def test_wrong_shapes(fn, name):
    for shape in [(3,), (4, 1), (), (5, 4)]:
        args = _good(fn, name)
        if name == "logits" and len(shape) == 2:
            continue  # another (R, C) only moves the error to the arrays that must fit it
        args[name] = np.zeros(shape, args[name].dtype)
        with raises_naming(ValueError, fn, "_cpu", f"'{name}'"):
            call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_logits_need_rows_of_classes(fn):
    for shape in [(4,), (4, 5, 1), (4, 0)]:
        args = GOOD[fn]()
        args["logits"] = f32(*shape) if 0 not in shape else np.zeros(shape, np.float32)
        with raises_naming(ValueError, fn, "_cpu", "'logits'", "(R, C)", str(shape)):
            call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_targets_out_of_range(fn):
    for bad in (5, -1, -101, 1 << 40):
        args = GOOD[fn]()
        args["target"][1] = bad
        with raises_naming(IndexError, fn, "_cpu", f"target {bad}", "row 1", "5 classes"):
            call(fn, args)
    args = GOOD[fn]()
    args["ignore_index"] = 4  # the ignored class may be a real one: row 1 is skipped
    args["target"][2] = 3
    call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_scalar_arguments(fn):
    for name, bad, exc in [("ignore_index", 1.5, TypeError), ("ignore_index", None, TypeError),
                           ("ignore_index", True, TypeError), ("label_smoothing", "0.1", TypeError),
                           ("label_smoothing", None, TypeError), ("label_smoothing", -0.1, ValueError),
                           ("label_smoothing", 1.5, ValueError), ("label_smoothing", float("nan"), ValueError)]:
        args = GOOD[fn]()
        args[name] = bad
        with raises_naming(exc, fn, "_cpu", name):
            call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_readonly_outputs_and_aliasing(fn):
    for out in OUTS[fn]:
        args = GOOD[fn]()
        args[out].flags.writeable = False
        with raises_naming(ValueError, fn, "_cpu", f"'{out}'", "writeable"):
            call(fn, args)
        others = [n for n, v in _good(fn, "weight").items() if isinstance(v, np.ndarray) and n != out]
        for other in others:
            args = _good(fn, "weight")
            buf = np.zeros(max(args[out].nbytes, args[other].nbytes) + 64, np.uint8)
            args[out] = buf[:args[out].nbytes].view(args[out].dtype).reshape(args[out].shape)
            args[other] = buf[:args[other].nbytes].view(args[other].dtype).reshape(args[other].shape)
            if other == "target":
                args[other][:] = 0  # valid targets, so the aliasing check is what fails
            with raises_naming(ValueError, fn, "_cpu", "share memory"):
                call(fn, args)
