"""Argument validation of tilegrad._cuda.matmul_half (the float16 / bfloat16 tensor-core matmul)
on fake CUDA arrays (objects with a __cuda_array_interface__): everything is checked before any
CUDA call, so this runs without a GPU. Calls whose arguments are all valid would launch a kernel
on the fake pointers, so those run only where no GPU is present (the launch reports it)."""
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

FN = "matmul_half"
M, K, N = 3, 4, 5


def good(typestr="<f2", batch=None, trans_a=False, trans_b=False):
    lead = () if batch is None else (batch,)
    return {"a": cai(lead + ((K, M) if trans_a else (M, K)), typestr=typestr),
            "b": cai(lead + ((N, K) if trans_b else (K, N)), typestr=typestr),
            "out": cai(lead + (M, N), typestr=typestr)}


def with_bias(args, typestr="<f2", n=N):
    return {**args, "bias": cai((n,), typestr=typestr)}


def launches_without_gpu(args, **kw):
    with raises_naming(RuntimeError, FN, "_cuda", "CUDA error"):
        call(_cuda, FN, args, **kw)


BAD = bad_interfaces("<f2")


@needs_module
@pytest.mark.parametrize("name", ["a", "b", "out", "bias"])
@pytest.mark.parametrize("label,transform,exc,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_interface(name, label, transform, exc, fragment):
    check_bad_interface(_cuda, FN, lambda: with_bias(good()), name, label, transform, exc, fragment)


@needs_module
@pytest.mark.parametrize("name", ["a", "b", "out", "bias"])
@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.float16), [1.0], 5], ids=["numpy", "list", "int"])
def test_not_a_cuda_array(name, bad):
    args = with_bias(good())
    args[name] = bad
    with raises_naming(TypeError, FN, "_cuda", f"'{name}'", "__cuda_array_interface__"):
        call(_cuda, FN, args)


@needs_module
def test_readonly_out():
    args = good()
    args["out"] = readonly(args["out"])
    with raises_naming(ValueError, FN, "_cuda", "'out'", "writeable"):
        call(_cuda, FN, args)


@needs_module
def test_dtypes():
    # float32 anywhere, mixed float16 / bfloat16 bits, and the bfloat16 flag not matching the arrays.
    for name in ("a", "b", "out", "bias"):
        args = with_bias(good())
        args[name] = cai(args[name]["shape"], typestr="<f4")
        with raises_naming(TypeError, FN, "_cuda", f"'{name}'", "float16"):
            call(_cuda, FN, args)
        args = with_bias(good())
        args[name] = cai(args[name]["shape"], typestr="<u2")
        with raises_naming(TypeError, FN, "_cuda", f"'{name}'", "bfloat16=True"):
            call(_cuda, FN, args)
        args = with_bias(good("<u2"), "<i2")
        args[name] = cai(args[name]["shape"], typestr="<f2")
        with raises_naming(TypeError, FN, "_cuda", f"'{name}'", "float16", "bfloat16=True"):
            call(_cuda, FN, args, bfloat16=True)


@needs_module
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_shapes(trans_a, trans_b):
    flags = {"trans_a": trans_a, "trans_b": trans_b}
    for batch in (None, 2):
        lead = () if batch is None else (batch,)
        for name, shape in [("a", lead + (M, K + 1) if not trans_a else lead + (K + 1, M)),
                            ("b", lead + (K + 1, N) if not trans_b else lead + (N, K + 1))]:
            args = good(batch=batch, **flags)
            args[name] = cai(shape)
            args[name]["typestr"] = "<f2"
            with raises_naming(ValueError, FN, "_cuda", "inner dims", "K"):
                call(_cuda, FN, args, **flags)
        for name, shape in [("a", (M,)), ("a", (1, 2, M, K)), ("b", lead + (K, N, 1)), ("b", (3,) + (K, N))]:
            args = good(batch=batch, **flags)
            args[name] = cai(shape, typestr="<f2")
            with raises_naming(ValueError, FN, "_cuda", "a (", "b ("):
                call(_cuda, FN, args, **flags)
        for shape in [lead + (M, N + 1), lead + (N, M), (M, N, 1)]:
            args = good(batch=batch, **flags)
            args["out"] = cai(shape, typestr="<f2")
            with raises_naming(ValueError, FN, "_cuda", "'out'", "shape"):
                call(_cuda, FN, args, **flags)
        for n in (N + 1, 1):
            with raises_naming(ValueError, FN, "_cuda", "'bias'", "shape"):
                call(_cuda, FN, with_bias(good(batch=batch, **flags), n=n), **flags)
    # Batch sizes must agree.
    args = good(batch=2)
    args["b"] = cai((3, K, N), typestr="<f2")
    with raises_naming(ValueError, FN, "_cuda", "batch"):
        call(_cuda, FN, args)


@needs_module
def test_scalars():
    for name, bad in [("trans_a", 1), ("trans_b", None), ("trans_a", np.bool_(True)), ("bfloat16", "yes"),
                      ("bfloat16", 0)]:
        with raises_naming(TypeError, FN, "_cuda", f"'{name}'"):
            call(_cuda, FN, good(), **{name: bad})
    for bad, exc in [("gelu", ValueError), ("RELU", ValueError), (None, TypeError), (1, TypeError)]:
        with raises_naming(exc, FN, "_cuda", "activation"):
            call(_cuda, FN, good(), activation=bad)
    for stream in (-1, "0", 1.5, None):
        with raises_naming(TypeError, FN, "_cuda", "stream"):
            call(_cuda, FN, good(), stream=stream)


@needs_module
def test_out_shares_nothing():
    for other in ("a", "b", "bias"):
        args = with_bias(good())
        args["out"] = cai(args["out"]["shape"], typestr="<f2", ptr=args[other]["data"][0] + 2)
        with raises_naming(ValueError, FN, "_cuda", "'out'", "share memory"):
            call(_cuda, FN, args)


@needs_module
def test_empty_outputs_launch_nothing():
    # Nothing to write: no CUDA call, so this returns normally even without a GPU.
    for a, b, out in [((0, K), (K, N), (0, N)), ((M, K), (K, 0), (M, 0)), ((0, M, K), (0, K, N), (0, M, N))]:
        call(_cuda, FN, {"a": cai(a, typestr="<f2", ptr=0 if 0 in a else None),
                         "b": cai(b, typestr="<f2", ptr=0 if 0 in b else None),
                         "out": cai(out, typestr="<f2", ptr=0)})


@needs_module
@no_gpu
def test_good_arguments_reach_the_launch():
    for trans_a in (False, True):
        for trans_b in (False, True):
            for batch in (None, 3):
                flags = {"trans_a": trans_a, "trans_b": trans_b}
                launches_without_gpu(good(batch=batch, **flags), **flags)
                launches_without_gpu(with_bias(good("<u2", batch, **flags), "<i2"), bfloat16=True,
                                     activation="relu", stream=12345, **flags)
    args = good()
    args["a"], args["b"] = readonly(args["a"]), readonly(args["b"])  # read-only inputs are fine
    launches_without_gpu(args)
    # K == 0 still launches: it writes act(bias).
    launches_without_gpu({"a": cai((M, 0), typestr="<f2", ptr=0), "b": cai((0, N), typestr="<f2", ptr=0),
                          "out": cai((M, N), typestr="<f2")})
