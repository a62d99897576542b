"""tilegrad._cuda fused cross-entropy (class-index targets): the kernels and the CUDA backend's
wrappers against a float64 NumPy reference on a GPU (tests marked cuda), that reference
against torch.nn.functional.cross_entropy(reduction='none') on the CPU, and argument
validation of the bindings on fake arrays (no GPU needed)."""
import numpy as np
import pytest

from .fake_cuda_arrays import bad_interfaces, cai, call, check_bad_interface, raises_naming, readonly

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

GPU = _cuda is not None and _cuda.is_available()
needs_module = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")
no_gpu = pytest.mark.skipif(GPU, reason="a GPU is present: fake pointers must not reach a kernel")


# ---- the float64 reference -------------------------------------------------------------------

def cross_entropy_ref(logits, target, weight, ignore_index, smoothing, grow):
    """loss (R,), lse (R,) and glogits = grow[r] * d loss[r] / d logits (R, C), float64.
    PyTorch's formula: (1 - e) * -w[t] * logp[t] + (e / C) * -sum_c w[c] * logp[c]."""
    x = logits.astype(np.float64)
    rows, classes = x.shape
    top = x.max(1, keepdims=True)
    lse = np.log(np.exp(x - top).sum(1)) + top[:, 0]
    logp = x - lse[:, None]
    w = np.ones(classes) if weight is None else weight.astype(np.float64)
    valid = target != ignore_index
    t = np.where(valid, target, 0)
    loss = -w[t] * logp[np.arange(rows), t]
    g = w[t][:, None] * (np.exp(logp) - (np.arange(classes)[None, :] == t[:, None]))
    if smoothing > 0:
        loss = (1 - smoothing) * loss + smoothing / classes * -(w * logp).sum(1)
        g = (1 - smoothing) * g + smoothing / classes * (w.sum() * np.exp(logp) - w)
    return np.where(valid, loss, 0.0), lse, np.where(valid[:, None], g * grow[:, None].astype(np.float64), 0.0)


def make_case(rng, rows, classes, weighted, ignore_index, ignored=0.2):
    logits = rng.normal(rows, classes) * 3
    target = rng.gen.integers(0, classes, rows)
    target[rng.gen.random(rows) < ignored] = ignore_index
    weight = rng.gen.random(classes).astype(np.float32) + 0.5 if weighted else None
    return logits, target, weight, rng.normal(rows)


def assert_close(got, want, what, rng, terms=1):
    got = np.asarray(got, np.float64)
    atol = 2e-6 * np.sqrt(terms) * max(1.0, float(np.abs(want).max(initial=0)))
    bad = np.argwhere(~(np.abs(got - want) <= atol + 1e-4 * np.abs(want)))
    assert bad.size == 0, (f"{what}: {len(bad)} of {got.size} bad, first {tuple(bad[0])}: got {got[tuple(bad[0])]} "
                           f"want {want[tuple(bad[0])]}; {rng}")


OPTIONS = [(False, -100, 0.0), (True, -100, 0.0), (False, 3, 0.1), (True, -100, 0.25), (True, 0, 1.0)]


@pytest.mark.parametrize("weighted,ignore_index,smoothing", OPTIONS)
def test_reference_matches_torch(rng, weighted, ignore_index, smoothing):
    torch = pytest.importorskip("torch")
    logits, target, weight, grow = make_case(rng, 37, 11, weighted, ignore_index)
    loss, lse, g = cross_entropy_ref(logits, target, weight, ignore_index, smoothing, grow)
    x = torch.tensor(logits.astype(np.float64), requires_grad=True)
    tw = None if weight is None else torch.tensor(weight.astype(np.float64))
    tloss = torch.nn.functional.cross_entropy(x, torch.tensor(target), weight=tw, ignore_index=ignore_index,
                                              label_smoothing=smoothing, reduction="none")
    np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=str(rng))
    tloss.backward(torch.tensor(grow.astype(np.float64)))
    np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=str(rng))
    np.testing.assert_allclose(lse, torch.logsumexp(x.detach(), 1).numpy(), rtol=1e-12, err_msg=str(rng))


@pytest.mark.parametrize("weighted,ignore_index,smoothing", OPTIONS)
def test_fallback_reference_matches(rng, weighted, ignore_index, smoothing):
    # the CUDA backend's fallback: the op's reference kernels
    from tilegrad.backends import reference_loss as reference_fused
    logits, target, weight, grow = make_case(rng, 23, 9, weighted, ignore_index)
    want_loss, want_lse, want_g = cross_entropy_ref(logits, target, weight, ignore_index, smoothing, grow)
    loss, lse = reference_fused.cross_entropy_forward(logits, target, weight, ignore_index, smoothing)
    g = reference_fused.cross_entropy_backward(logits, lse, target, weight, ignore_index, smoothing, grow)
    assert_close(loss, want_loss, "loss", rng, 9)
    assert_close(lse, want_lse, "lse", rng, 9)
    assert_close(g, want_g, "glogits", rng, 9)
    target[0] = 9
    with pytest.raises(IndexError, match="out of bounds"):
        reference_fused.cross_entropy_forward(logits, target, weight, ignore_index, smoothing)


# ---- GPU -------------------------------------------------------------------------------------

@pytest.fixture
def cp():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    if not GPU:
        pytest.skip("no usable CUDA device")
    return cupy


def run_kernels(cp, logits, target, weight, ignore_index, smoothing, grow):
    """The raw bindings on a non-default stream: (loss, lse, error, glogits) as NumPy."""
    s = cp.cuda.Stream(non_blocking=True)
    rows = logits.shape[0]
    dl = cp.asarray(logits)
    dw = None if weight is None else cp.asarray(weight)
    dt = cp.asarray(target.astype(np.int64))
    loss, lse = cp.full(rows, 7.0, cp.float32), cp.full(rows, 7.0, cp.float32)
    error = cp.zeros(1, cp.int32)
    _cuda.cross_entropy_forward(dl, dt, dw, ignore_index, smoothing, loss, lse, error, stream=s.ptr)
    glogits = cp.full(logits.shape, 7.0, cp.float32)
    _cuda.cross_entropy_backward(dl, lse, dt, dw, ignore_index, smoothing, cp.asarray(grow), glogits, stream=s.ptr)
    s.synchronize()
    return cp.asnumpy(loss), cp.asnumpy(lse), int(error.get()[0]), cp.asnumpy(glogits)


CLASSES = [1, 7, 32, 33, 1024, 1025, 5000, 8192, 9001]


@pytest.mark.cuda
@pytest.mark.parametrize("classes", CLASSES)
@pytest.mark.parametrize("weighted,ignore_index,smoothing", OPTIONS)
def test_cross_entropy_kernels(cp, rng, classes, weighted, ignore_index, smoothing):
    for rows in (1, 5, 67):
        logits, target, weight, grow = make_case(rng, rows, classes, weighted, ignore_index)
        loss, lse, error, g = run_kernels(cp, logits, target, weight, ignore_index, smoothing, grow)
        want = cross_entropy_ref(logits, target, weight, ignore_index, smoothing, grow)
        assert error == 0
        ctx = f"{rows}x{classes}"
        assert_close(loss, want[0], f"loss {ctx}", rng, classes)
        assert_close(lse, want[1], f"lse {ctx}", rng, classes)
        assert_close(g, want[2], f"glogits {ctx}", rng, classes)


@pytest.mark.cuda
@pytest.mark.parametrize("classes", [7, 2000])
def test_out_of_range_targets(cp, rng, classes):
    logits, target, weight, grow = make_case(rng, 9, classes, True, -100)
    target[2], target[5] = classes, -3
    loss, lse, error, g = run_kernels(cp, logits, target, weight, -100, 0.1, grow)
    assert error == 1
    assert np.isnan(loss[[2, 5]]).all() and np.isnan(g[[2, 5]]).all()
    ok = np.ones(9, bool)
    ok[[2, 5]] = False
    want = cross_entropy_ref(logits[ok], target[ok], weight, -100, 0.1, grow[ok])
    assert_close(loss[ok], want[0], "loss", rng, classes)
    assert_close(g[ok], want[2], "glogits", rng, classes)


@pytest.mark.cuda
def test_extreme_logits(cp, rng):
    # Large offsets (the smoothing sum is taken relative to the first logit) and -inf logits.
    logits, target, weight, grow = make_case(rng, 6, 50, True, -100, ignored=0)
    logits += 1e4
    got = run_kernels(cp, logits, target, weight, -100, 0.2, grow)
    want = cross_entropy_ref(logits, target, weight, -100, 0.2, grow)
    assert_close(got[0], want[0], "loss", rng, 50 * 1e4)
    logits[:, 0] = -np.inf
    target[:] = 1
    loss = run_kernels(cp, logits, target, weight, -100, 0.0, grow)[0]
    assert_close(loss, cross_entropy_ref(logits, target, weight, -100, 0.0, grow)[0], "loss", rng, 50)
    assert (run_kernels(cp, logits, target, weight, -100, 0.2, grow)[0] == np.inf).all()  # as the reference


def wrapper_case(cp, backend, rng):
    """int64 and int32 targets, the float64 fallback, and IndexError for a target out of range."""
    logits, target, weight, grow = make_case(rng, 40, 13, True, 5)
    for dtype in (np.int64, np.int32):
        loss, lse = backend.cross_entropy_forward(cp.asarray(logits), cp.asarray(target.astype(dtype)),
                                                  cp.asarray(weight), 5, 0.1)
        g = backend.cross_entropy_backward(cp.asarray(logits), lse, cp.asarray(target.astype(dtype)),
                                           cp.asarray(weight), 5, 0.1, cp.asarray(grow))
        want = cross_entropy_ref(logits, target, weight, 5, 0.1, grow)
        assert_close(cp.asnumpy(loss), want[0], "loss", rng, 13)
        assert_close(cp.asnumpy(g), want[2], "glogits", rng, 13)
    loss, _ = backend.cross_entropy_forward(cp.asarray(logits.astype(np.float64)), cp.asarray(target), None, 5, 0.0)
    assert loss.dtype == np.float64
    assert_close(cp.asnumpy(loss), cross_entropy_ref(logits, target, None, 5, 0.0, grow)[0], "loss", rng)
    target[3] = 13
    with pytest.raises(IndexError, match="out of bounds"):
        backend.cross_entropy_forward(cp.asarray(logits), cp.asarray(target), None, 5, 0.0)


@pytest.mark.cuda
def test_wrappers(cp, rng):
    from tilegrad.backends import cuda as backend
    wrapper_case(cp, backend, rng)


# ---- binding validation on fake arrays (no GPU needed) ---------------------------------------

R, C = 6, 5


def forward_args():
    return {"logits": cai((R, C)), "target": cai((R,), typestr="<i8"), "weight": cai((C,)), "ignore_index": -100,
            "label_smoothing": 0.1, "loss": cai((R,)), "lse": cai((R,)), "error": cai((1,), typestr="<i4")}


def backward_args():
    return {"logits": cai((R, C)), "lse": cai((R,)), "target": cai((R,), typestr="<i8"), "weight": cai((C,)),
            "ignore_index": -100, "label_smoothing": 0.1, "grow": cai((R,)), "glogits": cai((R, C))}


GOOD = {"cross_entropy_forward": forward_args, "cross_entropy_backward": backward_args}
OUTS = {"cross_entropy_forward": ("loss", "lse", "error"), "cross_entropy_backward": ("glogits",)}
ARRAY_CASES = [(fn, name, case) for fn, make in GOOD.items() for name, a in make().items() if isinstance(a, dict)
               for case in bad_interfaces(a["typestr"])]


def launches_without_gpu(fn, args, **kw):
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        call(_cuda, fn, args, **kw)


@needs_module
@pytest.mark.parametrize("fn,name,case", ARRAY_CASES, ids=[f"{f}-{n}-{c[0]}" for f, n, c in ARRAY_CASES])
def test_bad_interface(fn, name, case):
    check_bad_interface(_cuda, fn, GOOD[fn], name, *case)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_not_a_cuda_array_and_readonly(fn):
    for name, a in GOOD[fn]().items():
        if not isinstance(a, dict):
            continue
        for bad in ([None] if name != "weight" else []) + [np.zeros(a["shape"], np.float32), [1.0], 5]:
            args = GOOD[fn]()
            args[name] = bad
            with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "__cuda_array_interface__"):
                call(_cuda, fn, args)
    for name in OUTS[fn]:
        args = GOOD[fn]()
        args[name] = readonly(args[name])
        with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "writeable"):
            call(_cuda, fn, args)


@needs_module
@no_gpu
@pytest.mark.parametrize("fn", list(GOOD))
def test_good_arguments_reach_the_launch(fn):
    launches_without_gpu(fn, GOOD[fn]())
    args = GOOD[fn]()
    for name, a in args.items():
        if isinstance(a, dict) and name not in OUTS[fn]:
            args[name] = readonly(a)
    args.update(weight=None, ignore_index=np.int64(3), label_smoothing=1)
    launches_without_gpu(fn, args, stream=777)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_shapes(fn):
    for shape in [(R,), (R, 0), (R, C, 1)]:
        args = GOOD[fn]()
        args["logits"] = cai(shape)
        with raises_naming(ValueError, fn, "_cuda", "'logits'", "(rows, classes)"):
            call(_cuda, fn, args)
    others = {"target": [(R + 1,), (R, 1)], "weight": [(C + 1,), (1, C)]}
    others.update({name: [(R, 1), (R + 1,)] for name in ("loss", "lse", "grow") if name in GOOD[fn]()})
    if fn == "cross_entropy_forward":
        others["error"] = [(2,), ()]
    else:
        others["glogits"] = [(R, C + 1), (C, R)]
    for name, shapes in others.items():
        for shape in shapes:
            args = GOOD[fn]()
            args[name] = cai(shape, typestr=args[name]["typestr"])
            with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "shape"):
                call(_cuda, fn, args)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_scalars(fn):
    for name, bad, exc in [("ignore_index", 1.5, TypeError), ("ignore_index", None, TypeError),
                           ("ignore_index", True, TypeError), ("ignore_index", 2 ** 63, TypeError),
                           ("label_smoothing", "0.1", TypeError), ("label_smoothing", None, TypeError),
                           ("label_smoothing", -0.1, ValueError), ("label_smoothing", 1.5, ValueError),
                           ("label_smoothing", float("nan"), ValueError)]:
        args = GOOD[fn]()
        args[name] = bad
        with raises_naming(exc, fn, "_cuda", name):
            call(_cuda, fn, args)
    for stream in (-1, "0", 1.5, None):
        with raises_naming(TypeError, fn, "_cuda", "stream"):
            call(_cuda, fn, GOOD[fn](), stream=stream)


@needs_module
def test_outputs_share_nothing():
    cases = [("cross_entropy_forward", "loss", "lse"), ("cross_entropy_forward", "error", "loss"),
             ("cross_entropy_forward", "lse", "logits"), ("cross_entropy_forward", "loss", "target"),
             ("cross_entropy_backward", "glogits", "logits"), ("cross_entropy_backward", "glogits", "grow"),
             ("cross_entropy_backward", "glogits", "weight")]
    for fn, out, other in cases:
        args = GOOD[fn]()
        args[out] = cai(args[out]["shape"], typestr=args[out]["typestr"], ptr=args[other]["data"][0] + 8)
        with raises_naming(ValueError, fn, "_cuda", f"'{out}'", f"'{other}'", "share memory"):
            call(_cuda, fn, args)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_no_rows_launch_nothing(fn):
    args = {k: (cai((0,) + a["shape"][1:] if k not in ("weight", "error") else a["shape"], typestr=a["typestr"],
                    ptr=0 if k not in ("weight", "error") else None) if isinstance(a, dict) else a)
            for k, a in GOOD[fn]().items()}
    call(_cuda, fn, args)
