"""Argument validation of tilegrad._cuda's softmax, activation, layer-norm and fused optimizer
bindings. Arguments are fake objects carrying a __cuda_array_interface__, so this runs without a
GPU: everything is checked before any CUDA call. Calls whose arguments are all valid would
launch a kernel on the fake pointers, so those run only where no GPU is present (the launch then
reports the missing device)."""
import numpy as np
import pytest

from .test_bindings import CUDA_BAD, Fake, cai, raises_naming

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

pytestmark = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")

GPU = _cuda is not None and _cuda.is_available()
no_gpu = pytest.mark.skipif(GPU, reason="a GPU is present: fake pointers must not reach a kernel")


def c_strides(shape):
    strides, step = [], 4
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _strided(d, scale):
    return {**d, "strides": tuple(scale * s for s in c_strides(d["shape"]))}


def _fortran(d):
    return {**d, "strides": tuple(reversed(c_strides(tuple(reversed(d["shape"])))))}


# test_bindings' table with stride cases that fit any rank (its own assume 2-D arrays).
BAD = [c for c in CUDA_BAD if not c[0].startswith("strides")] + [
    ("strides fortran", _fortran, ValueError, "C-contiguous"),
    ("strides reversed", lambda d: _strided(d, -1), ValueError, "C-contiguous"),
    ("strides step 2", lambda d: _strided(d, 2), ValueError, "C-contiguous"),
    ("strides wrong rank", lambda d: {**d, "strides": (4,) * (len(d["shape"]) + 1)}, TypeError, "strides"),
]


def _unary():
    return {"x": cai((3, 4)), "out": cai((3, 4))}


def _unary_backward(first):
    return lambda: {first: cai((3, 4)), "gy": cai((3, 4)), "out": cai((3, 4))}


GOOD = {
    "softmax": lambda: {"x": cai((3, 4)), "dim": 1, "out": cai((3, 4))},
    "log_softmax": lambda: {"x": cai((3, 4)), "dim": 0, "out": cai((3, 4))},
    "softmax_backward": lambda: {"y": cai((3, 4)), "gy": cai((3, 4)), "dim": -1, "out": cai((3, 4))},
    "log_softmax_backward": lambda: {"y": cai((3, 4)), "gy": cai((3, 4)), "dim": 0, "out": cai((3, 4))},
    "sigmoid": _unary, "tanh": _unary, "silu": _unary,
    "gelu": lambda: {"x": cai((3, 4)), "approximate": "none", "out": cai((3, 4))},
    "leaky_relu": lambda: {"x": cai((3, 4)), "slope": 0.1, "out": cai((3, 4))},
    "sigmoid_backward": _unary_backward("y"), "tanh_backward": _unary_backward("y"),
    "silu_backward": _unary_backward("x"),
    "gelu_backward": lambda: {"x": cai((3, 4)), "gy": cai((3, 4)), "approximate": "tanh", "out": cai((3, 4))},
    "leaky_relu_backward": lambda: {"x": cai((3, 4)), "gy": cai((3, 4)), "slope": 0.1, "out": cai((3, 4))},
    "layer_norm": lambda: {"x": cai((2, 3, 4)), "weight": cai((3, 4)), "bias": cai((3, 4)), "n_dims": 2,
                           "eps": 1e-5, "y": cai((2, 3, 4)), "mean": cai((2, 1, 1)), "rstd": cai((2, 1, 1))},
    "layer_norm_backward": lambda: {"x": cai((2, 3, 4)), "weight": cai((3, 4)), "mean": cai((2, 1, 1)),
                                    "rstd": cai((2, 1, 1)), "gy": cai((2, 3, 4)), "n_dims": 2,
                                    "gx": cai((2, 3, 4)), "gweight": cai((3, 4)), "gbias": cai((3, 4))},
}
OUTS = {"layer_norm": ("y", "mean", "rstd"), "layer_norm_backward": ("gx", "gweight", "gbias")}
ARRAY_ARGS = [(fn, name) for fn, make in GOOD.items() for name, v in make().items() if isinstance(v, dict)]
OUT_ARGS = [(fn, name) for fn in GOOD for name in OUTS.get(fn, ("out",))]
ELEMENTWISE = [fn for fn in GOOD if not fn.startswith("layer_norm")]


def call(fn, args, **kw):
    getattr(_cuda, fn)(*(Fake(a) if isinstance(a, dict) else a for a in args.values()), **kw)


def launches_without_gpu(fn, args, **kw):
    """Valid arguments reach the launch, which reports the missing GPU."""
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        call(fn, args, **kw)


# ---- every array argument: the interface checks ------------------------------------------

@pytest.mark.parametrize("fn,name", ARRAY_ARGS)
@pytest.mark.parametrize("label,transform,exc,fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_interface(fn, name, label, transform, exc, fragment):
    args = GOOD[fn]()
    if label == "strides fortran" and sum(n > 1 for n in args[name]["shape"]) < 2:
        pytest.skip("Fortran order of this shape is C-contiguous too")
    args[name] = transform(args[name])
    with raises_naming(exc, fn, "_cuda", f"'{name}'", fragment):
        call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAY_ARGS)
@pytest.mark.parametrize("bad", [None, np.zeros((3, 4), np.float32), [1.0], 5], ids=["None", "numpy", "list", "int"])
def test_not_a_cuda_array(fn, name, bad):
    if bad is None and name in ("weight", "bias"):
        pytest.skip("None means no weight / bias")
    args = GOOD[fn]()
    args[name] = bad
    with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "__cuda_array_interface__"):
        call(fn, args)


@pytest.mark.parametrize("fn,name", OUT_ARGS)
def test_readonly_out(fn, name):
    args = GOOD[fn]()
    args[name] = {**args[name], "data": (args[name]["data"][0], True)}
    with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "writeable"):
        call(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
def test_readonly_inputs_accepted(fn):
    args = GOOD[fn]()
    outs = OUTS.get(fn, ("out",))
    for name, v in args.items():
        if isinstance(v, dict) and name not in outs:
            args[name] = {**v, "data": (v["data"][0], True)}
    if GPU:
        pytest.skip("a GPU is present: fake pointers must not reach a kernel")
    launches_without_gpu(fn, args)


@pytest.mark.parametrize("fn", list(GOOD))
@pytest.mark.parametrize("stream", [-1, "0", 1.5, None])
def test_bad_stream(fn, stream):
    with raises_naming(TypeError, fn, "_cuda", "stream"):
        call(fn, GOOD[fn](), stream=stream)


@no_gpu
@pytest.mark.parametrize("fn", list(GOOD))
def test_good_arguments_reach_the_launch(fn):
    launches_without_gpu(fn, GOOD[fn]())
    launches_without_gpu(fn, GOOD[fn](), stream=12345)  # any handle passes validation


# ---- elementwise shapes, overlap, in place ------------------------------------------------

@pytest.mark.parametrize("fn", ELEMENTWISE)
@pytest.mark.parametrize("name", ["x", "y", "gy", "out"])
def test_elementwise_shape_mismatch(fn, name):
    args = GOOD[fn]()
    if name not in args:
        pytest.skip(f"{fn} has no {name}")
    args[name] = cai((4, 3))
    with raises_naming(ValueError, fn, "_cuda", "(4, 3)", "(3, 4)"):
        call(fn, args)


@pytest.mark.parametrize("fn", ELEMENTWISE)
def test_elementwise_partial_overlap_and_in_place(fn):
    args = GOOD[fn]()
    first = next(iter(args))
    base = 1 << 20
    args[first] = cai((3, 4), ptr=base)
    args["out"] = cai((3, 4), ptr=base + 16)
    with raises_naming(ValueError, fn, "_cuda", "overlaps"):
        call(fn, args)
    if "gy" in args:
        args = GOOD[fn]()
        args["gy"] = cai((3, 4), ptr=base)
        args["out"] = cai((3, 4), ptr=base + 44)
        with raises_naming(ValueError, fn, "_cuda", "overlaps"):
            call(fn, args)
    if not GPU:
        args = GOOD[fn]()
        args["out"] = dict(args[first])  # exactly in place is fine
        launches_without_gpu(fn, args)
        args = GOOD[fn]()
        args[first] = cai((3, 4), ptr=base)
        args["out"] = cai((3, 4), ptr=base + 48)  # adjacent is fine
        launches_without_gpu(fn, args)


@pytest.mark.parametrize("fn", ELEMENTWISE)
def test_empty_arrays_need_no_gpu(fn):
    args = GOOD[fn]()
    for name, v in args.items():
        if isinstance(v, dict):
            args[name] = cai((0, 4), ptr=0)
    assert call(fn, args, stream=0) is None
    for name, v in args.items():
        if isinstance(v, dict):
            args[name] = cai((5, 0, 2))  # non-null pointers, still nothing to do
    call(fn, args)


# ---- softmax ------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"])
def test_softmax_dim(fn):
    for dim in (2, -3, 100):
        args = GOOD[fn]()
        args["dim"] = dim
        with raises_naming(ValueError, fn, "_cuda", "dim", "out of range", "(3, 4)"):
            call(fn, args)
    for dim in (1.0, "1", None, True, np.float32(1), np.array([1]), np.array(1)):
        args = GOOD[fn]()
        args["dim"] = dim
        with raises_naming(TypeError, fn, "_cuda", "'dim'", "int"):
            call(fn, args)
    zero_d = {k: (cai(()) if isinstance(v, dict) else 0) for k, v in GOOD[fn]().items()}
    with raises_naming(ValueError, fn, "_cuda", "0-d"):
        call(fn, zero_d)
    if not GPU:
        args = GOOD[fn]()
        args["dim"] = np.int64(-2)  # NumPy integers are ints
        launches_without_gpu(fn, args)


# ---- activations --------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["gelu", "gelu_backward"])
def test_gelu_approximate(fn):
    args = GOOD[fn]()
    args["approximate"] = "fast"
    with raises_naming(ValueError, fn, "_cuda", "'none' or 'tanh'", "fast"):
        call(fn, args)
    for bad in (None, 0, b"tanh"):
        args["approximate"] = bad
        with raises_naming(TypeError, fn, "_cuda", "'approximate'", "str"):
            call(fn, args)


@pytest.mark.parametrize("fn,name", [("leaky_relu", "slope"), ("leaky_relu_backward", "slope"),
                                     ("layer_norm", "eps"), ("layer_norm", "n_dims"),
                                     ("layer_norm_backward", "n_dims")])
def test_scalar_types(fn, name):
    for bad in ("0.1", None, True, [0.1], np.zeros(2, np.float32), 1j):
        args = GOOD[fn]()
        args[name] = bad
        with raises_naming(TypeError, fn, "_cuda", f"'{name}'"):
            call(fn, args)
    if name in ("slope", "eps") and not GPU:
        for good in (1, np.float32(0.25), np.float64(1e-3)):
            args = GOOD[fn]()
            args[name] = good
            launches_without_gpu(fn, args)


def test_activation_argument_names():
    with pytest.raises(TypeError):
        _cuda.sigmoid(Fake(cai((3,))))  # out is required
    with raises_naming(TypeError, "sigmoid_backward", "_cuda", "'y'"):
        _cuda.sigmoid_backward(y=None, gy=Fake(cai((3,))), out=Fake(cai((3,))))
    with raises_naming(TypeError, "silu_backward", "_cuda", "'x'"):
        _cuda.silu_backward(x=None, gy=Fake(cai((3,))), out=Fake(cai((3,))))


# ---- layer norm ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["layer_norm", "layer_norm_backward"])
def test_layer_norm_shapes(fn):
    for n_dims in (0, 4, -1):
        args = GOOD[fn]()
        args["n_dims"] = n_dims
        with raises_naming(ValueError, fn, "_cuda", "n_dims", "(2, 3, 4)"):
            call(fn, args)
    args = GOOD[fn]()
    args["weight"] = cai((4,))
    with raises_naming(ValueError, fn, "_cuda", "'weight'", "(3, 4)", "(4,)"):
        call(fn, args)
    stats = ("mean", "rstd")
    others = ("y",) if fn == "layer_norm" else ("gy", "gx", "gweight", "gbias")
    for name in stats + others:
        args = GOOD[fn]()
        args[name] = cai(args[name]["shape"] + (1,))
        with raises_naming(ValueError, fn, "_cuda", f"'{name}'", "shape"):
            call(fn, args)
    if not GPU:
        args = GOOD[fn]()
        args["weight"] = None
        if fn == "layer_norm":
            args["bias"] = None
        launches_without_gpu(fn, args)  # no affine parameters


def test_layer_norm_outputs_share_nothing():
    args = GOOD["layer_norm"]()
    args["y"] = dict(args["x"])
    with raises_naming(ValueError, "layer_norm", "_cuda", "'y'", "'x'", "share memory"):
        call("layer_norm", args)
    args = GOOD["layer_norm"]()
    args["rstd"] = dict(args["mean"])
    with raises_naming(ValueError, "layer_norm", "_cuda", "'mean'", "'rstd'", "share memory"):
        call("layer_norm", args)
    args = GOOD["layer_norm"]()
    args["mean"] = cai((2, 1, 1), ptr=args["bias"]["data"][0] + 8)
    with raises_naming(ValueError, "layer_norm", "_cuda", "'mean'", "'bias'", "share memory"):
        call("layer_norm", args)
    args = GOOD["layer_norm_backward"]()
    args["gx"] = dict(args["gy"])
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'gx'", "'gy'", "share memory"):
        call("layer_norm_backward", args)
    args = GOOD["layer_norm_backward"]()
    args["gbias"] = dict(args["weight"])
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'gbias'", "'weight'", "share memory"):
        call("layer_norm_backward", args)


def test_layer_norm_empty():
    # No rows: the forward has nothing to write.
    _cuda.layer_norm(Fake(cai((0, 4), ptr=0)), None, None, 1, 1e-5, Fake(cai((0, 4), ptr=0)),
                     Fake(cai((0, 1), ptr=0)), Fake(cai((0, 1), ptr=0)))
    # Empty rows: the backward's outputs are all empty.
    _cuda.layer_norm_backward(Fake(cai((3, 0), ptr=0)), None, Fake(cai((3, 1))), Fake(cai((3, 1))),
                              Fake(cai((3, 0), ptr=0)), 1, Fake(cai((3, 0), ptr=0)), Fake(cai((0,), ptr=0)),
                              Fake(cai((0,), ptr=0)))
    if GPU:
        return
    # Rows with no elements still get (NaN) statistics; no rows still zero gweight / gbias.
    with raises_naming(RuntimeError, "layer_norm", "_cuda", "CUDA error"):
        _cuda.layer_norm(Fake(cai((3, 0), ptr=0)), None, None, 1, 1e-5, Fake(cai((3, 0), ptr=0)),
                         Fake(cai((3, 1))), Fake(cai((3, 1))))
    with raises_naming(RuntimeError, "layer_norm_backward", "_cuda", "CUDA error"):
        _cuda.layer_norm_backward(Fake(cai((0, 4), ptr=0)), None, Fake(cai((0, 1), ptr=0)),
                                  Fake(cai((0, 1), ptr=0)), Fake(cai((0, 4), ptr=0)), 1,
                                  Fake(cai((0, 4), ptr=0)), Fake(cai((4,))), Fake(cai((4,))))


# ---- fused optimizer steps ----------------------------------------------------------------

SHAPES = [(3, 4), (5,), (2, 1, 3)]
ADAM_LISTS = ("params", "grads", "exp_avgs", "exp_avg_sqs")
ADAM_HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, step=3)
SGD_LISTS = ("params", "grads", "momentum_buffers")
SGD_HYPER = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-4)


def lists(names, shapes=SHAPES):
    return {name: [cai(s) for s in shapes] for name in names}


def _wrap(v):
    if isinstance(v, (list, tuple)):
        return type(v)(Fake(a) if isinstance(a, dict) else a for a in v)
    return Fake(v) if isinstance(v, dict) else v


def step_call(fn, arrays, **kw):
    getattr(_cuda, fn)(**{k: _wrap(v) for k, v in arrays.items()}, **kw)


def adam(arrays=None, **kw):
    step_call("adamw_step", lists(ADAM_LISTS) if arrays is None else arrays, **{**ADAM_HYPER, **kw})


def sgd(arrays=None, **kw):
    step_call("sgd_step", lists(SGD_LISTS) if arrays is None else arrays, **{**SGD_HYPER, **kw})


OPT_CASES = [("adamw_step", adam, ADAM_LISTS + ("max_exp_avg_sqs",)), ("sgd_step", sgd, SGD_LISTS)]


def opt_lists(fn):
    names = ADAM_LISTS + ("max_exp_avg_sqs",) if fn == "adamw_step" else SGD_LISTS
    return lists(names)


@no_gpu
@pytest.mark.parametrize("fn,run,names", OPT_CASES, ids=["adamw", "sgd"])
def test_opt_good_arguments_reach_the_launch(fn, run, names):
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        run(opt_lists(fn))
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        run({k: tuple(v) for k, v in opt_lists(fn).items()}, maximize=True, stream=7)  # tuples too


@pytest.mark.parametrize("fn,run,names", OPT_CASES, ids=["adamw", "sgd"])
def test_opt_nothing_to_do_needs_no_gpu(fn, run, names):
    run({k: [] for k in opt_lists(fn)})
    run({k: [cai((0, 3), ptr=0), cai((4, 0))] for k in opt_lists(fn)})


@pytest.mark.parametrize("fn,run,names", OPT_CASES, ids=["adamw", "sgd"])
def test_opt_list_arguments(fn, run, names):
    for name in names:
        for bad in (None if name not in ("max_exp_avg_sqs", "momentum_buffers") else 3, cai((3, 4)), "abc", 5):
            arrays = opt_lists(fn)
            arrays[name] = bad
            with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "list or tuple"):
                step_call(fn, arrays, **(ADAM_HYPER if fn == "adamw_step" else SGD_HYPER))
        arrays = opt_lists(fn)
        arrays[name] = arrays[name][:2]
        if name == "params":
            exc_frag = "'params' has 2"
        else:
            exc_frag = f"'{name}' has 2 arrays"
        with raises_naming(ValueError, fn, "_cuda", exc_frag):
            run(arrays)
        arrays = opt_lists(fn)
        arrays[name][1] = cai((6,))
        with raises_naming(ValueError, fn, "_cuda", "shape"):
            run(arrays)
        for label, transform, exc, fragment in BAD:
            if label == "strides fortran":
                continue  # (2, 1, 3) in Fortran order: covered by test_bad_interface's shapes
            arrays = opt_lists(fn)
            arrays[name][2] = transform(arrays[name][2])
            with raises_naming(exc, fn, "_cuda", f"'{name}[2]'", fragment):
                run(arrays)
        arrays = opt_lists(fn)
        arrays[name][0] = np.zeros((3, 4), np.float32)
        with raises_naming(TypeError, fn, "_cuda", f"'{name}[0]'", "__cuda_array_interface__"):
            run(arrays)


@pytest.mark.parametrize("fn,run,names", OPT_CASES, ids=["adamw", "sgd"])
def test_opt_writeable(fn, run, names):
    for name in names:
        arrays = opt_lists(fn)
        arrays[name][1] = {**arrays[name][1], "data": (arrays[name][1]["data"][0], True)}
        if name == "grads":
            if not GPU:
                with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
                    run(arrays)  # gradients are only read
            continue
        with raises_naming(ValueError, fn, "_cuda", f"'{name}[1]'", "writeable"):
            run(arrays)


@pytest.mark.parametrize("fn,run,names", OPT_CASES, ids=["adamw", "sgd"])
def test_opt_arrays_share_no_memory(fn, run, names):
    arrays = opt_lists(fn)
    arrays["grads"][1] = dict(arrays["params"][1])
    with raises_naming(ValueError, fn, "_cuda", "'params[1]'", "'grads[1]'", "share memory"):
        run(arrays)
    arrays = opt_lists(fn)
    p0 = arrays["params"][0]["data"][0]
    arrays[names[-1]][2] = cai((2, 1, 3), ptr=p0 + 44)  # the last float of params[0] (12 floats)
    with raises_naming(ValueError, fn, "_cuda", "'params[0]'", f"'{names[-1]}[2]'", "share memory"):
        run(arrays)
    arrays = opt_lists(fn)
    arrays["params"][2] = cai((2, 1, 3), ptr=p0 + 48)  # adjacent is fine
    if not GPU:
        with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
            run(arrays)


def test_adam_hyperparameters():
    for name in ("lr", "beta1", "beta2", "eps", "weight_decay"):
        for bad in ("0.1", None, True, [0.1], np.zeros(2, np.float32)):
            with raises_naming(TypeError, "adamw_step", "_cuda", f"'{name}'", "real number"):
                adam(**{name: bad})
    for name in ("beta1", "beta2"):
        for bad in (1.0, -0.1, 2, float("nan")):
            with raises_naming(ValueError, "adamw_step", "_cuda", name, "[0, 1)"):
                adam(**{name: bad})
    for bad in (0, -3):
        with raises_naming(ValueError, "adamw_step", "_cuda", "step", ">= 1"):
            adam(step=bad)
    for bad in (1.0, "1", True, None):
        with raises_naming(TypeError, "adamw_step", "_cuda", "'step'", "int"):
            adam(step=bad)
    for name in ("decoupled", "maximize"):
        for bad in (1, 0, "yes", None):
            with raises_naming(TypeError, "adamw_step", "_cuda", f"'{name}'", "bool"):
                adam(**{name: bad})
    with pytest.raises(TypeError):  # hyperparameters are keyword-only
        _cuda.adamw_step([], [], [], [], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(TypeError):  # and required
        _cuda.adamw_step([], [], [], [], lr=1e-3)


def test_sgd_hyperparameters():
    for name in ("lr", "momentum", "dampening", "weight_decay"):
        for bad in ("0.1", None, True, [0.1]):
            with raises_naming(TypeError, "sgd_step", "_cuda", f"'{name}'", "real number"):
                sgd(**{name: bad})
    for name in ("nesterov", "maximize", "first_step"):
        for bad in (1, "yes", None):
            with raises_naming(TypeError, "sgd_step", "_cuda", f"'{name}'", "bool"):
                sgd(**{name: bad})
    with raises_naming(ValueError, "sgd_step", "_cuda", "momentum_buffers", "momentum != 0"):
        sgd({**lists(SGD_LISTS), "momentum_buffers": None})
    with raises_naming(ValueError, "sgd_step", "_cuda", "momentum_buffers", "momentum != 0"):
        sgd(momentum=0.0)
    sgd({"params": [], "grads": [], "momentum_buffers": None}, momentum=0.0)  # nothing to do
    if not GPU:
        with raises_naming(RuntimeError, "sgd_step", "_cuda", "CUDA error"):
            sgd({**lists(SGD_LISTS), "momentum_buffers": None}, momentum=0.0, nesterov=False)


def test_opt_launch_capacity():
    assert _cuda.opt_max_tensors_per_launch() == 256


def test_layer_norm_backward_workspace():
    assert _cuda.layer_norm_backward_workspace(0, 768) == 0
    assert _cuda.layer_norm_backward_workspace(16, 768) == 0  # few rows: one chunk, no scratch
    need = _cuda.layer_norm_backward_workspace(16384, 768)
    assert need > 0 and need % (2 * 768) == 0
    assert _cuda.layer_norm_backward_workspace(np.int64(16384), 768) == need
    for bad in (1.0, None, True, "3"):
        with raises_naming(TypeError, "layer_norm_backward_workspace", "_cuda", "int"):
            _cuda.layer_norm_backward_workspace(bad, 768)
    with raises_naming(ValueError, "layer_norm_backward_workspace", "_cuda", ">= 0"):
        _cuda.layer_norm_backward_workspace(-1, 768)

    def args(shape=(2000, 40), ws=None):
        lead = shape[:-1] + (1,)
        d = {"x": cai(shape), "weight": cai(shape[-1:]), "mean": cai(lead), "rstd": cai(lead), "gy": cai(shape),
             "n_dims": 1, "gx": cai(shape), "gweight": cai(shape[-1:]), "gbias": cai(shape[-1:])}
        return d, ws

    need = _cuda.layer_norm_backward_workspace(2000, 40)
    assert need > 0

    def run(d, ws, **kw):
        call("layer_norm_backward", d, workspace=None if ws is None else Fake(ws), **kw)

    for label, transform, exc, fragment in BAD:
        if label == "strides fortran":
            continue  # a 1-D array in Fortran order is C-contiguous too
        d, _ = args()
        with raises_naming(exc, "layer_norm_backward", "_cuda", "'workspace'", fragment):
            run(d, transform(cai((need,))))
    d, _ = args()
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'workspace'", "writeable"):
        run(d, cai((need,), readonly=True))
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'workspace'", f"at least {need}"):
        run(d, cai((need - 1,)))
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'workspace'", "'gy'", "share memory"):
        run(d, cai((need,), ptr=d["gy"]["data"][0] + 4 * 1000))
    with raises_naming(ValueError, "layer_norm_backward", "_cuda", "'gbias'", "'workspace'", "share memory"):
        run(d, cai((need,), ptr=d["gbias"]["data"][0] - 4))
    with pytest.raises(TypeError):  # keyword-only
        getattr(_cuda, "layer_norm_backward")(*(Fake(v) if isinstance(v, dict) else v for v in d.values()), 0,
                                               Fake(cai((need,))))
    if not GPU:
        with raises_naming(RuntimeError, "layer_norm_backward", "_cuda", "CUDA error"):
            run(d, cai((need + 10, 2)))  # any shape with enough elements
        with raises_naming(RuntimeError, "layer_norm_backward", "_cuda", "CUDA error"):
            run(d, None)
        d, _ = args((3, 40))
        with raises_naming(RuntimeError, "layer_norm_backward", "_cuda", "CUDA error"):
            run(d, cai((0,), ptr=0))  # none needed: an empty one is fine


def test_matmul_version():
    def mm(**kw):
        _cuda.matmul(Fake(cai((3, 4))), Fake(cai((4, 5))), Fake(cai((3, 5))), **kw)

    for bad in (4, -1, 100):
        with raises_naming(ValueError, "matmul", "_cuda", "version", str(bad)):
            mm(version=bad)
    for bad in (1.0, "2", None, True):
        with raises_naming(TypeError, "matmul", "_cuda", "'version'", "int"):
            mm(version=bad)
    with pytest.raises(TypeError):  # keyword-only
        _cuda.matmul(Fake(cai((3, 4))), Fake(cai((4, 5))), Fake(cai((3, 5))), 0, 2)
    _cuda.matmul(Fake(cai((0, 4), ptr=0)), Fake(cai((4, 5))), Fake(cai((0, 5), ptr=0)), version=2)  # empty
    if not GPU:
        for v in (0, 1, 2, 3, np.int64(2)):
            with raises_naming(RuntimeError, "matmul", "_cuda", "CUDA error"):
                mm(version=v)
