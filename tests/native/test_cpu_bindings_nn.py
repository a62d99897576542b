"""Argument validation of the tilegrad._cpu softmax, activation, layer-norm and conv2d bindings
beyond what test_bindings.py checks for every binding (dtype, contiguity, alignment, readonly
outputs, shapes): scalar arguments, dims, geometry and aliasing rules."""
import numpy as np
import pytest

from .test_bindings import CPU_GOOD, ELEMENTWISE, call_cpu, f32, needs_cpu, raises_naming


@needs_cpu
@pytest.mark.parametrize("fn", ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"])
def test_cpu_softmax_dim(fn):
    for dim in (2, -3, 100):
        args = CPU_GOOD[fn]()
        args["dim"] = dim
        with raises_naming(ValueError, fn, "_cpu", "dim", "out of range", "(3, 4)"):
            call_cpu(fn, args)
    for dim in (1.0, "1", None, True, np.float32(1)):
        args = CPU_GOOD[fn]()
        args["dim"] = dim
        with raises_naming(TypeError, fn, "_cpu", "'dim'", "int"):
            call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    args["dim"] = np.int64(-2)  # NumPy integers are ints
    call_cpu(fn, args)
    zero_d = {k: (np.ones((), np.float32) if isinstance(v, np.ndarray) else 0) for k, v in CPU_GOOD[fn]().items()}
    with raises_naming(ValueError, fn, "_cpu", "0-d"):
        call_cpu(fn, zero_d)


@needs_cpu
@pytest.mark.parametrize("fn", ["gelu", "gelu_backward"])
def test_cpu_gelu_approximate(fn):
    args = CPU_GOOD[fn]()
    args["approximate"] = "fast"
    with raises_naming(ValueError, fn, "_cpu", "'none' or 'tanh'", "fast"):
        call_cpu(fn, args)
    for bad in (None, 0, b"tanh"):
        args["approximate"] = bad
        with raises_naming(TypeError, fn, "_cpu", "'approximate'", "str"):
            call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn,name", [("leaky_relu", "slope"), ("leaky_relu_backward", "slope"),
                                     ("layer_norm", "eps"), ("layer_norm", "n_dims"),
                                     ("layer_norm_backward", "n_dims")])
def test_cpu_scalar_types(fn, name):
    for bad in ("0.1", None, True, [0.1], np.zeros(2, np.float32)):
        args = CPU_GOOD[fn]()
        args[name] = bad
        with raises_naming(TypeError, fn, "_cpu", f"'{name}'"):
            call_cpu(fn, args)
    if name in ("slope", "eps"):
        for good in (1, np.float32(0.25), np.float64(1e-3)):
            args = CPU_GOOD[fn]()
            args[name] = good
            call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn", ["layer_norm", "layer_norm_backward"])
def test_cpu_layer_norm_shapes(fn):
    for n_dims in (0, 4, -1):
        args = CPU_GOOD[fn]()
        args["n_dims"] = n_dims
        with raises_naming(ValueError, fn, "_cpu", "n_dims", "(2, 3, 4)"):
            call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    args["weight"] = f32(4)
    with raises_naming(ValueError, fn, "_cpu", "'weight'", "(3, 4)", "(4,)"):
        call_cpu(fn, args)
    stats = ("mean", "rstd")
    others = ("y",) if fn == "layer_norm" else ("gy", "gx", "gweight", "gbias")
    for name in stats + others:
        args = CPU_GOOD[fn]()
        args[name] = f32(*(args[name].shape + (1,)))
        with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "shape"):
            call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    args["weight"] = None
    if fn == "layer_norm":
        args["bias"] = None
    call_cpu(fn, args)  # no affine parameters


@needs_cpu
def test_cpu_layer_norm_outputs_share_nothing():
    args = CPU_GOOD["layer_norm"]()
    args["y"] = args["x"]
    with raises_naming(ValueError, "layer_norm", "_cpu", "'y'", "'x'", "share memory"):
        call_cpu("layer_norm", args)
    args = CPU_GOOD["layer_norm"]()
    args["rstd"] = args["mean"]
    with raises_naming(ValueError, "layer_norm", "_cpu", "'mean'", "'rstd'", "share memory"):
        call_cpu("layer_norm", args)
    args = CPU_GOOD["layer_norm_backward"]()
    args["gx"] = args["gy"]
    with raises_naming(ValueError, "layer_norm_backward", "_cpu", "'gx'", "'gy'", "share memory"):
        call_cpu("layer_norm_backward", args)
    args = CPU_GOOD["layer_norm_backward"]()
    args["gbias"] = args["weight"]
    with raises_naming(ValueError, "layer_norm_backward", "_cpu", "'gbias'", "'weight'", "share memory"):
        call_cpu("layer_norm_backward", args)


@needs_cpu
@pytest.mark.parametrize("fn", ELEMENTWISE[2:])
def test_cpu_new_elementwise_partial_overlap_and_in_place(fn):
    buf = np.zeros(24, np.float32)
    args = CPU_GOOD[fn]()
    first = next(iter(args))
    args[first] = buf[:12].reshape(3, 4)
    args["out"] = buf[4:16].reshape(3, 4)
    with raises_naming(ValueError, fn, "_cpu", "overlaps"):
        call_cpu(fn, args)
    args["out"] = args[first]  # exactly in place is fine
    call_cpu(fn, args)


@needs_cpu
def test_cpu_conv2d_geometry():
    def call(**changes):
        args = CPU_GOOD["conv2d"]()
        args.update(changes)
        call_cpu("conv2d", args)

    call()
    for name, bad in [("stride", (0, 1)), ("dilation", (1, 0)), ("padding", (-1, 0))]:
        with raises_naming(ValueError, "conv2d", "_cpu", f"'{name}'", ">="):
            call(**{name: bad})
    for name, bad in [("stride", 1), ("padding", (1, 1, 1)), ("dilation", "11"), ("stride", (1.0, 1))]:
        with raises_naming(TypeError, "conv2d", "_cpu", f"'{name}'"):
            call(**{name: bad})
    for groups in (0, 3, 4):
        with raises_naming(ValueError, "conv2d", "_cpu", "groups", "(2, 4, 5, 6)"):
            call(groups=groups)
    with raises_naming(TypeError, "conv2d", "_cpu", "'groups'", "int"):
        call(groups=2.0)
    with raises_naming(ValueError, "conv2d", "_cpu", "(N, C, H, W)"):
        call(x=f32(4, 5, 6))
    with raises_naming(ValueError, "conv2d", "_cpu", "larger than the padded input"):
        call(w=f32(6, 2, 9, 2))
    with raises_naming(ValueError, "conv2d", "_cpu", "'out'", "(2, 6, 5, 3)"):
        call(out=f32(2, 6, 5, 4))
    args = CPU_GOOD["conv2d"]()
    flat = np.zeros(400, np.float32)
    args["x"] = flat[:240].reshape(2, 4, 5, 6)
    args["out"] = flat[200:380].reshape(2, 6, 5, 3)
    with raises_naming(ValueError, "conv2d", "_cpu", "'out'", "'x'", "share memory"):
        call_cpu("conv2d", args)


@needs_cpu
@pytest.mark.parametrize("fn,out", [("conv2d_backward_input", "gx"), ("conv2d_backward_weight", "gw")])
def test_cpu_conv2d_backward_shapes(fn, out):
    args = CPU_GOOD[fn]()
    args["gy"] = f32(2, 6, 5, 4)
    with raises_naming(ValueError, fn, "_cpu", "'gy'", "(2, 6, 5, 3)"):
        call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    args["groups"] = 3
    with raises_naming(ValueError, fn, "_cpu", "groups"):
        call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    args[out] = f32(*args[out].shape[1:])
    with raises_naming(ValueError, fn, "_cpu", "(N, C, H, W)"):
        call_cpu(fn, args)
    args = CPU_GOOD[fn]()
    flat = np.zeros(400, np.float32)
    args[out] = flat[:args[out].size].reshape(args[out].shape)
    args["gy"] = flat[8:8 + 180].reshape(2, 6, 5, 3)
    with raises_naming(ValueError, fn, "_cpu", f"'{out}'", "'gy'", "share memory"):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("dim", [2 ** 63, -(2 ** 64), True, np.zeros(1, np.int64)], ids=["2^63", "-2^64", "bool", "array"])
def test_int_arguments_refuse_what_is_not_an_int64(dim):
    # one checker (csrc/common.h) for both modules: bools, arrays and ints past int64 are refused
    args = CPU_GOOD["softmax"]()
    args["dim"] = dim
    with raises_naming(TypeError, "softmax", "_cpu", "'dim'", "int"):
        call_cpu("softmax", args)
