"""float16 arguments of tilegrad._cuda's softmax, activation and layer-norm bindings: accepted when every
array of a call is float16, refused (naming the argument) when the dtypes are mixed, and the
in-place rules measured in float16's bytes. Fake __cuda_array_interface__ objects: no GPU needed."""
import pytest

from .test_bindings import raises_naming
from .test_cuda_bindings import ELEMENTWISE, GOOD, GPU, call, launches_without_gpu

_cuda = pytest.importorskip("tilegrad._cuda", reason="tilegrad._cuda was not built")


def as_half(args):
    return {k: ({**v, "typestr": "<f2"} if isinstance(v, dict) else v) for k, v in args.items()}


@pytest.mark.parametrize("fn", ELEMENTWISE)
def test_all_float16_reaches_the_kernel(fn):
    if GPU:
        pytest.skip("a GPU is present: fake pointers must not reach a kernel")
    launches_without_gpu(fn, as_half(GOOD[fn]()))


@pytest.mark.parametrize("fn", ELEMENTWISE)
def test_mixed_dtypes_are_refused(fn):
    args = GOOD[fn]()
    names = [k for k, v in args.items() if isinstance(v, dict)]
    for other in names[1:]:  # the first array sets the dtype; each later one may not differ
        for first_type, other_type in (("<f4", "<f2"), ("<f2", "<f4")):
            mixed = dict(args)
            mixed[names[0]] = {**args[names[0]], "typestr": first_type}
            mixed[other] = {**args[other], "typestr": other_type}
            for name in names[1:]:
                if name != other:
                    mixed[name] = {**args[name], "typestr": first_type}
            with raises_naming(TypeError, fn, "_cuda", f"'{other}'", "dtype of the first array"):
                call(fn, mixed)


@pytest.mark.parametrize("fn", ["sigmoid", "softmax"])
def test_float16_partial_overlap_counts_half_bytes(fn):
    args = as_half(GOOD[fn]())
    first = "x"
    # out starts one float16 element (2 bytes) into x: a partial overlap only in 2-byte units
    args["out"] = {**args["out"], "data": (args[first]["data"][0] + 2, False)}
    with raises_naming(ValueError, fn, "_cuda", "partially overlaps"):
        call(fn, args)


def test_layer_norm_float16_with_float32_statistics():
    args = GOOD["layer_norm"]()
    for name in ("x", "weight", "bias", "y"):
        args[name] = {**args[name], "typestr": "<f2"}
    if not GPU:
        launches_without_gpu("layer_norm", args)  # mean / rstd stay float32
    bad = {**args, "mean": {**args["mean"], "typestr": "<f2"}}
    with raises_naming(TypeError, "layer_norm", "_cuda", "'mean'", "float32"):
        call("layer_norm", bad)
    bad = {**args, "weight": {**args["weight"], "typestr": "<f4"}}
    with raises_naming(TypeError, "layer_norm", "_cuda", "'weight'", "dtype of the first array"):
        call("layer_norm", bad)
