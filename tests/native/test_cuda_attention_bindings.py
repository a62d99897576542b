"""Argument validation of tilegrad._cuda's sdpa_forward / sdpa_backward bindings on fake CUDA
arrays (objects with a __cuda_array_interface__): everything is checked before any CUDA call,
so this runs without a GPU. Calls whose arguments are all valid would launch a kernel on the
fake pointers, so those run only where no GPU is present (the launch reports the missing one)."""
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


B, L, S, E, EV = 2, 5, 7, 4, 3


def forward_args():
    return {"q": cai((B, L, E)), "k": cai((B, S, E)), "v": cai((B, S, EV)), "mask": cai((B, L, S)),
            "is_causal": False, "scale": 0.5, "out": cai((B, L, EV)), "lse": cai((B, L))}


def backward_args():
    args = forward_args()
    args.update(gout=cai((B, L, EV)), delta=cai((B, L)), gq=cai((B, L, E)), gk=cai((B, S, E)), gv=cai((B, S, EV)))
    return args


GOOD = {"sdpa_forward": forward_args, "sdpa_backward": backward_args}
OUTS = {"sdpa_forward": ("out", "lse"), "sdpa_backward": ("delta", "gq", "gk", "gv")}
ARRAYS = [(fn, n) for fn, make in GOOD.items() for n, a in make().items() if isinstance(a, dict)]
BAD = bad_interfaces("<f4")


def launches_without_gpu(fn, args, **kw):
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        call(_cuda, fn, args, **kw)


@needs_module
@pytest.mark.parametrize("fn,name", ARRAYS)
@pytest.mark.parametrize("label,transform,exc,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_interface(fn, name, label, transform, exc, fragment):
    check_bad_interface(_cuda, fn, GOOD[fn], name, label, transform, exc, fragment)


@needs_module
@pytest.mark.parametrize("fn,name", ARRAYS)
@pytest.mark.parametrize("bad", [None, np.zeros((2, 5, 4), np.float32), [1.0], 5], ids=["None", "numpy", "list", "int"])
def test_not_a_cuda_array(fn, name, bad):
    if bad is None and name == "mask":
        pytest.skip("None means no mask")
    args = GOOD[fn]()
    args[name] = bad
    with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "__cuda_array_interface__"):
        call(_cuda, fn, args)


@needs_module
@pytest.mark.parametrize("fn,name", [(fn, n) for fn, outs in OUTS.items() for n in outs])
def test_readonly_out(fn, name):
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
            args[name] = readonly(a)  # read-only inputs are fine
    launches_without_gpu(fn, args, stream=12345, version=1)
    for mask in (None, cai((B, L, S), typestr="|b1"), cai((1, L, S)), cai((B, 1, S), typestr="|b1"),
                 cai((B, L, 1)), cai((1, 1, 1))):
        args = GOOD[fn]()
        args["mask"] = mask
        launches_without_gpu(fn, args, version=2, dtype="float32")
    args = GOOD[fn]()
    args.update(is_causal=True, scale=np.float32(2))
    launches_without_gpu(fn, args)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_shapes(fn):
    cases = [("q", (B, L)), ("q", (B, L, E, 1)), ("k", (B + 1, S, E)), ("k", (B, S, E + 1)), ("v", (B, S + 1, EV)),
             ("v", (B + 1, S, EV))]
    for name, shape in cases:
        args = GOOD[fn]()
        args[name] = cai(shape)
        with raises_naming(ValueError, fn, "_cuda", "(B, L, E)", "(B, S, Ev)"):
            call(_cuda, fn, args)
    for name, shape in [("out", (B, L, EV + 1)), ("lse", (B, L, 1))] + (
            [("gout", (B, L + 1, EV)), ("delta", (B,)), ("gq", (B, L, E + 1)), ("gk", (B, S, E, 1)),
             ("gv", (B, S, EV + 1))] if fn == "sdpa_backward" else []):
        args = GOOD[fn]()
        args[name] = cai(shape)
        with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "shape"):
            call(_cuda, fn, args)
    for mshape in [(B, L, S + 1), (L, S), (B, L, S, 1), (3, L, S), (B, 2, S)]:
        args = GOOD[fn]()
        args["mask"] = cai(mshape)
        with raises_naming(ValueError, fn, "_cuda", "'mask'", "(B, L, S)"):
            call(_cuda, fn, args)


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_head_dims_up_to_128(fn):
    for e, ev in [(129, EV), (E, 129), (1000, 1000)]:
        args = GOOD[fn]()
        for name, a in args.items():
            if isinstance(a, dict) and a["shape"][-1:] in ((E,), (EV,)) and len(a["shape"]) == 3 and name != "mask":
                args[name] = cai(a["shape"][:-1] + ((e,) if a["shape"][-1] == E else (ev,)))
        with raises_naming(ValueError, fn, "_cuda", "at most 128"):
            call(_cuda, fn, args)


def half_forward_args(typestr, e=64, ev=64, ptr_offset=0):
    args = forward_args()
    shapes = {"q": (B, L, e), "k": (B, S, e), "v": (B, S, ev), "out": (B, L, ev)}
    for name, shape in shapes.items():
        args[name] = cai(shape, typestr=typestr)
    args["q"] = {**args["q"], "data": (args["q"]["data"][0] + ptr_offset, False)}
    return args


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_dtypes(fn):
    with_type = lambda name, ts: {**GOOD[fn](), name: cai(GOOD[fn]()[name]["shape"], typestr=ts)}  # noqa: E731
    with raises_naming(TypeError, fn, "_cuda", "'q'", "uint16", "dtype='bfloat16'"):
        call(_cuda, fn, with_type("q", "<u2"))
    with raises_naming(TypeError, fn, "_cuda", "dtype='float16'", "float32"):
        call(_cuda, fn, GOOD[fn](), dtype="float16")
    with raises_naming(ValueError, fn, "_cuda", "dtype", "fp8"):
        call(_cuda, fn, GOOD[fn](), dtype="fp8")
    with raises_naming(TypeError, fn, "_cuda", "'dtype'"):
        call(_cuda, fn, GOOD[fn](), dtype=3)
    for name in ("k", "v", "out") + (("gout", "gq") if fn == "sdpa_backward" else ()):
        with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "float32"):
            call(_cuda, fn, with_type(name, "<f2"))
    for name, ts in [("mask", "<i4"), ("mask", "<f8"), ("lse", "<f2")]:
        with raises_naming(TypeError, fn, "_cuda", f"'{name}'"):
            call(_cuda, fn, with_type(name, ts))
    for version in (3, 4):
        with raises_naming(TypeError, fn, "_cuda", f"version {version}", "float32"):
            call(_cuda, fn, GOOD[fn](), version=version)


@needs_module
def test_half_forward_arguments():
    fn = "sdpa_forward"
    for typestr, dtype in (("<f2", None), ("<f2", "float16"), ("<u2", "bfloat16")):
        for e, ev in ((64, 32), (32, 32), (96, 96), (4, 3)):
            with raises_naming(ValueError, fn, "_cuda", "E == Ev == 64 or 128"):
                call(_cuda, fn, half_forward_args(typestr, e, ev), dtype=dtype)
        with raises_naming(ValueError, fn, "_cuda", "'q'", "4-byte aligned"):
            call(_cuda, fn, half_forward_args(typestr, ptr_offset=2), dtype=dtype)
        for version in (1, 2):
            with raises_naming(TypeError, fn, "_cuda", f"version {version}", "float16" if dtype != "bfloat16"
                               else "bfloat16"):
                call(_cuda, fn, half_forward_args(typestr), dtype=dtype, version=version)
        args = half_forward_args(typestr)
        args["k"] = cai(args["k"]["shape"])  # float32 beside 16-bit q
        with raises_naming(TypeError, fn, "_cuda", "'k'"):
            call(_cuda, fn, args, dtype=dtype)
        if not GPU:
            for version in (0, 3, 4):
                for d in (64, 128):
                    launches_without_gpu(fn, half_forward_args(typestr, d, d), dtype=dtype, version=version)
    with raises_naming(TypeError, fn, "_cuda", "uint16", "dtype='bfloat16'"):
        call(_cuda, fn, half_forward_args("<u2"), dtype="float16")
    with raises_naming(TypeError, fn, "_cuda", "dtype='bfloat16'", "float16"):
        call(_cuda, fn, half_forward_args("<f2"), dtype="bfloat16")


def half_backward_args(typestr, e=64, ev=64, offsets=None):
    """backward_args with 16-bit q, k, v, out, gout, gq, gk, gv of head dims e, ev; `offsets`
    moves the named arrays' pointers by that many bytes."""
    args = backward_args()
    shapes = {"q": (B, L, e), "k": (B, S, e), "v": (B, S, ev), "out": (B, L, ev), "gout": (B, L, ev),
              "gq": (B, L, e), "gk": (B, S, e), "gv": (B, S, ev)}
    for name, shape in shapes.items():
        args[name] = cai(shape, typestr=typestr)
    for name, off in (offsets or {}).items():
        args[name] = {**args[name], "data": (args[name]["data"][0] + off, False)}
    return args


HALF_ARRAYS = ("q", "k", "v", "out", "gout", "gq", "gk", "gv")


@needs_module
def test_half_backward_arguments():
    fn = "sdpa_backward"
    for typestr, dtype in (("<f2", None), ("<f2", "float16"), ("<u2", "bfloat16")):
        for e, ev in ((64, 32), (32, 32), (96, 96), (128, 64), (4, 3)):
            with raises_naming(ValueError, fn, "_cuda", "E == Ev == 64 or 128"):
                call(_cuda, fn, half_backward_args(typestr, e, ev), dtype=dtype)
        for name in HALF_ARRAYS:
            with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "4-byte aligned"):
                call(_cuda, fn, half_backward_args(typestr, offsets={name: 2}), dtype=dtype)
            args = half_backward_args(typestr)
            args[name] = cai(args[name]["shape"])  # one float32 array among 16-bit ones
            with raises_naming(TypeError, fn, "_cuda", "'k'" if name == "q" else f"'{name}'"):
                call(_cuda, fn, args, dtype=None if name == "q" else dtype)
        for name, ts in (("lse", typestr), ("delta", typestr)):  # float32 whatever q is
            args = half_backward_args(typestr)
            args[name] = cai(args[name]["shape"], typestr=ts)
            with raises_naming(TypeError, fn, "_cuda", f"'{name}'"):
                call(_cuda, fn, args, dtype=dtype)
        for version in (1, 2):
            with raises_naming(TypeError, fn, "_cuda", f"version {version}", "float16" if dtype != "bfloat16"
                               else "bfloat16"):
                call(_cuda, fn, half_backward_args(typestr), dtype=dtype, version=version)
        for out, other in (("gq", "q"), ("gk", "gq"), ("gv", "gout"), ("delta", "out")):
            args = half_backward_args(typestr)
            args[out] = {**args[out], "data": (args[other]["data"][0] + 4, False)}
            with raises_naming(ValueError, fn, "_cuda", f"'{out}'", "share memory"):
                call(_cuda, fn, args, dtype=dtype)
        args = half_backward_args(typestr)
        args["gk"] = readonly(args["gk"])
        with raises_naming(ValueError, fn, "_cuda", "'gk'", "writeable"):
            call(_cuda, fn, args, dtype=dtype)
        if not GPU:
            for version in (0, 3):
                for d in (64, 128):
                    launches_without_gpu(fn, half_backward_args(typestr, d, d), dtype=dtype, version=version)
    with raises_naming(TypeError, fn, "_cuda", "uint16", "dtype='bfloat16'"):
        call(_cuda, fn, half_backward_args("<u2"), dtype="float16")
    with raises_naming(TypeError, fn, "_cuda", "dtype='bfloat16'", "float16"):
        call(_cuda, fn, half_backward_args("<f2"), dtype="bfloat16")


@needs_module
@pytest.mark.parametrize("fn", list(GOOD))
def test_scalars(fn):
    for name, bad in [("is_causal", 1), ("is_causal", None), ("is_causal", np.bool_(True)), ("scale", "0.5"),
                      ("scale", None), ("scale", True), ("scale", 1j)]:
        args = GOOD[fn]()
        args[name] = bad
        with raises_naming(TypeError, fn, "_cuda", f"'{name}'"):
            call(_cuda, fn, args)
    for version, exc in [(5, ValueError), (-1, ValueError), (1.0, TypeError), ("2", TypeError)]:
        with raises_naming(exc, fn, "_cuda", "version"):
            call(_cuda, fn, GOOD[fn](), version=version)
    for stream in (-1, "0", 1.5, None):
        with raises_naming(TypeError, fn, "_cuda", "stream"):
            call(_cuda, fn, GOOD[fn](), stream=stream)


@needs_module
def test_outputs_share_nothing():
    fn = "sdpa_forward"
    for out, other in [("out", "q"), ("out", "v"), ("lse", "mask"), ("lse", "out")]:
        args = forward_args()
        args[out] = cai(args[out]["shape"], ptr=args[other]["data"][0] + 4)
        with raises_naming(ValueError, fn, "_cuda", f"'{out}'", "share memory"):
            call(_cuda, fn, args)
    fn = "sdpa_backward"
    for out, other in [("gq", "q"), ("gk", "gq"), ("gv", "gout"), ("delta", "lse"), ("delta", "out"), ("gv", "mask")]:
        args = backward_args()
        args[out] = cai(args[out]["shape"], ptr=args[other]["data"][0] + 4)
        with raises_naming(ValueError, fn, "_cuda", f"'{out}'", "share memory"):
            call(_cuda, fn, args)


@needs_module
def test_empty_calls_launch_nothing():
    def sized(b, length, source):
        a = backward_args()
        shapes = {"q": (b, length, E), "k": (b, source, E), "v": (b, source, EV), "mask": (b, length, source),
                  "out": (b, length, EV), "lse": (b, length), "gout": (b, length, EV), "delta": (b, length),
                  "gq": (b, length, E), "gk": (b, source, E), "gv": (b, source, EV)}
        return {k: (cai(shapes[k], ptr=0 if 0 in shapes[k] else None) if isinstance(v, dict) else v)
                for k, v in a.items()}
    for b, length, source in [(0, L, S), (B, 0, 0)]:
        call(_cuda, "sdpa_backward", sized(b, length, source))
    for b, length, source in [(0, L, S), (B, 0, S), (B, 0, 0)]:
        args = {k: v for k, v in sized(b, length, source).items() if k in forward_args()}
        call(_cuda, "sdpa_forward", args)
    if not GPU:
        # No queries but some keys: gk and gv must still be written (zeros).
        launches_without_gpu("sdpa_backward", sized(B, 0, S))
