"""Argument validation of tilegrad._cuda's conv2d and pooling bindings. Arguments are fake
objects carrying a __cuda_array_interface__, so this runs without a GPU: everything is checked
before any CUDA call. Calls whose arguments are all valid would launch a kernel on the fake
pointers, so those run only where no GPU is present (the launch then reports the missing
device)."""
import numpy as np
import pytest

from .test_bindings import CUDA_BAD, Fake, cai, raises_naming

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None
try:
    from tilegrad import _cpu
except ImportError:
    _cpu = None

pytestmark = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")

GPU = _cuda is not None and _cuda.is_available()
no_gpu = pytest.mark.skipif(GPU, reason="a GPU is present: fake pointers must not reach a kernel")


def i64(shape, **kw):
    return cai(shape, typestr="<i8", **kw)


def itemsize(d):
    return 8 if d["typestr"] == "<i8" else 4


def c_strides(shape, size):
    strides, step = [], size
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _scaled(d, scale):
    return {**d, "strides": tuple(scale * s for s in c_strides(d["shape"], itemsize(d)))}


def _fortran(d):
    return {**d, "strides": tuple(reversed(c_strides(tuple(reversed(d["shape"])), itemsize(d))))}


# test_bindings' interface defects, with stride cases built from the array's own item size.
BAD = [c for c in CUDA_BAD if not c[0].startswith("strides")] + [
    ("strides fortran", _fortran, ValueError, "C-contiguous"),
    ("strides reversed", lambda d: _scaled(d, -1), ValueError, "C-contiguous"),
    ("strides step 2", lambda d: _scaled(d, 2), ValueError, "C-contiguous"),
    ("strides wrong rank", lambda d: {**d, "strides": (4,) * (len(d["shape"]) + 1)}, TypeError, "strides"),
]

CONV_GEOMETRY = {"stride": (1, 2), "padding": (1, 0), "dilation": (1, 1), "groups": 2}
GOOD = {
    "conv2d": lambda: {"x": cai((2, 4, 5, 6)), "w": cai((6, 2, 3, 2)), **CONV_GEOMETRY, "out": cai((2, 6, 5, 3))},
    "conv2d_backward_input": lambda: {"gy": cai((2, 6, 5, 3)), "w": cai((6, 2, 3, 2)), **CONV_GEOMETRY,
                                      "gx": cai((2, 4, 5, 6))},
    "conv2d_backward_weight": lambda: {"gy": cai((2, 6, 5, 3)), "x": cai((2, 4, 5, 6)), **CONV_GEOMETRY,
                                       "gw": cai((6, 2, 3, 2))},
    # (7, 5) pooled by (3, 2) windows, stride (2, 1), padding 1, dilation (1, 2), ceil mode: (4, 5)
    "max_pool2d": lambda: {"x": cai((2, 3, 7, 5)), "kernel": (3, 2), "stride": (2, 1), "padding": (1, 1),
                           "dilation": (1, 2), "ceil_mode": True, "out": cai((2, 3, 4, 5)), "arg": i64((2, 3, 4, 5))},
    "max_pool2d_backward": lambda: {"gy": cai((2, 3, 4, 5)), "arg": i64((2, 3, 4, 5)), "kernel": (3, 2),
                                    "stride": (2, 1), "padding": (1, 1), "dilation": (1, 2), "ceil_mode": True,
                                    "gx": cai((2, 3, 7, 5))},
    # (7, 5) pooled by 3 x 3 windows, stride 2, padding 1, ceil mode: (4, 3)
    "avg_pool2d": lambda: {"x": cai((2, 3, 7, 5)), "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1),
                           "ceil_mode": True, "count_include_pad": False, "divisor_override": None,
                           "out": cai((2, 3, 4, 3))},
    "avg_pool2d_backward": lambda: {"gy": cai((2, 3, 4, 3)), "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1),
                                    "ceil_mode": True, "count_include_pad": False, "divisor_override": 5,
                                    "gx": cai((2, 3, 7, 5))},
}
OUTS = {"conv2d": ("out",), "conv2d_backward_input": ("gx",), "conv2d_backward_weight": ("gw",),
        "max_pool2d": ("out", "arg"), "max_pool2d_backward": ("gx",), "avg_pool2d": ("out",),
        "avg_pool2d_backward": ("gx",)}
ARRAY_ARGS = [(fn, name) for fn, make in GOOD.items() for name, v in make().items() if isinstance(v, dict)]
OUT_ARGS = [(fn, name) for fn, outs in OUTS.items() for name in outs]
CONV = ["conv2d", "conv2d_backward_input", "conv2d_backward_weight"]
POOL = [fn for fn in GOOD if fn not in CONV]


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
    if fragment == "float32" and args[name]["typestr"] == "<i8":
        fragment = "int64"
    args[name] = transform(args[name])
    with raises_naming(exc, fn, "_cuda", f"'{name}'", fragment):
        call(fn, args)


@pytest.mark.parametrize("fn,name", ARRAY_ARGS)
@pytest.mark.parametrize("bad", [None, np.zeros((3, 4), np.float32), [1.0], 5], ids=["None", "numpy", "list", "int"])
def test_not_a_cuda_array(fn, name, bad):
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


@no_gpu
@pytest.mark.parametrize("fn", list(GOOD))
def test_readonly_inputs_accepted(fn):
    args = GOOD[fn]()
    for name, v in args.items():
        if isinstance(v, dict) and name not in OUTS[fn]:
            args[name] = {**v, "data": (v["data"][0], True)}
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
    args = GOOD[fn]()
    for name, v in args.items():  # explicit C-contiguous strides are fine
        if isinstance(v, dict):
            args[name] = _scaled(v, 1)
    launches_without_gpu(fn, args)
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        getattr(_cuda, fn)(**{k: Fake(v) if isinstance(v, dict) else v for k, v in GOOD[fn]().items()}, stream=0)


@pytest.mark.parametrize("fn", list(GOOD))
def test_outputs_share_no_memory(fn):
    names = [n for n, v in GOOD[fn]().items() if isinstance(v, dict)]
    for out in OUTS[fn]:
        for other in names:
            if other == out:
                continue
            args = GOOD[fn]()
            # the output starts at the other array's last element (rounded down to 8 bytes)
            last = args[other]["data"][0] + itemsize(args[other]) * (int(np.prod(args[other]["shape"])) - 1)
            args[out] = {**args[out], "data": (last - last % 8, False)}
            with raises_naming(ValueError, fn, "_cuda", f"'{out}'", f"'{other}'", "share memory"):
                call(fn, args)


@no_gpu
@pytest.mark.parametrize("fn", list(GOOD))
def test_adjacent_arrays_are_fine(fn):
    args = GOOD[fn]()
    base = 1 << 45
    for name, v in args.items():
        if isinstance(v, dict):
            args[name] = {**v, "data": (base, False)}
            base += itemsize(v) * int(np.prod(v["shape"]))
    launches_without_gpu(fn, args)


# ---- conv2d geometry ------------------------------------------------------------------------

def geometry_errors(fn):
    """(changes to GOOD[fn], exception, message fragments)."""
    first = {"conv2d": "x", "conv2d_backward_input": "gx", "conv2d_backward_weight": "x"}[fn]
    weight = {"conv2d_backward_weight": "gw"}.get(fn, "w")
    out = {"conv2d": "out"}.get(fn, "gy")
    cases = []
    for name, bad in [("stride", (0, 1)), ("dilation", (1, 0)), ("padding", (-1, 0))]:
        cases.append(({name: bad}, ValueError, (f"'{name}'", ">=")))
    for name, bad in [("stride", 1), ("padding", (1, 1, 1)), ("dilation", "11"), ("stride", (1.0, 1)),
                      ("padding", (True, 0)), ("dilation", None)]:
        cases.append(({name: bad}, TypeError, (f"'{name}'",)))
    for groups in (0, 3, 4, -2):
        cases.append(({"groups": groups}, ValueError, ("groups", "(2, 4, 5, 6)")))
    for groups in (2.0, True, "2", None):
        cases.append(({"groups": groups}, TypeError, ("'groups'", "int")))
    cases.append(({first: cai((4, 5, 6))}, ValueError, ("(N, C, H, W)",)))
    if fn != "conv2d_backward_weight":
        cases.append(({weight: cai((6, 2, 9, 2))}, ValueError, ("larger than the padded input",)))
    cases.append(({out: cai((2, 6, 5, 4))}, ValueError, (f"'{out}'", "(2, 6, 5, 3)", "(2, 6, 5, 4)")))
    cases.append(({"padding": (1, 2 ** 31)}, ValueError, ("below 2^31",)))
    return cases


@pytest.mark.parametrize("fn", CONV)
def test_conv_geometry(fn):
    for changes, exc, fragments in geometry_errors(fn):
        args = {**GOOD[fn](), **changes}
        with raises_naming(exc, fn, "_cuda", *fragments):
            call(fn, args)


@pytest.mark.skipif(_cpu is None, reason="tilegrad._cpu was not built")
@pytest.mark.parametrize("fn", CONV)
def test_conv_geometry_messages_match_the_cpu_module(fn):
    """One geometry check serves both modules: the same mistakes read the same."""
    def host(v):
        return np.zeros(v["shape"], np.float32) if isinstance(v, dict) else v

    for changes, exc, _ in geometry_errors(fn):
        args = {**GOOD[fn](), **changes}
        with pytest.raises(exc) as on_gpu:
            call(fn, args)
        with pytest.raises(exc) as on_cpu:
            getattr(_cpu, fn)(*(host(v) for v in args.values()))
        assert str(on_gpu.value) == str(on_cpu.value).replace("tilegrad._cpu.", "tilegrad._cuda."), changes


@pytest.mark.parametrize("fn", CONV)
def test_conv_sizes_beyond_the_kernels(fn):
    # Every size must stay below 2^28 for the kernels' 32-bit in-image index arithmetic.
    big = {"conv2d": {"x": cai((1, 1, 2 ** 29, 1)), "w": cai((1, 1, 1, 1)), "out": cai((1, 1, 2 ** 29, 1))},
           "conv2d_backward_input": {"gy": cai((1, 1, 2 ** 29, 1)), "w": cai((1, 1, 1, 1)),
                                     "gx": cai((1, 1, 2 ** 29, 1))},
           "conv2d_backward_weight": {"gy": cai((1, 1, 2 ** 29, 1)), "x": cai((1, 1, 2 ** 29, 1)),
                                      "gw": cai((1, 1, 1, 1))}}[fn]
    args = {**GOOD[fn](), **big, "stride": (1, 1), "padding": (0, 0), "groups": 1}
    with raises_naming(ValueError, fn, "_cuda", "too large for the CUDA kernels"):
        call(fn, args)


@pytest.mark.parametrize("fn", CONV)
def test_conv_empty_arrays(fn):
    # Nothing to write needs no GPU (null pointers are fine for empty arrays).
    empty_batch = {"conv2d": {"x": cai((0, 4, 5, 6), ptr=0), "out": cai((0, 6, 5, 3), ptr=0)},
                   "conv2d_backward_input": {"gy": cai((0, 6, 5, 3), ptr=0), "gx": cai((0, 4, 5, 6), ptr=0)},
                   "conv2d_backward_weight": {"gw": cai((0, 2, 3, 2), ptr=0), "gy": cai((2, 0, 5, 3), ptr=0)}}[fn]
    assert call(fn, {**GOOD[fn](), **empty_batch}) is None
    if GPU:
        return
    # An empty sum still writes zeros: the weight gradient of an empty batch, the output of
    # a convolution over no input channels.
    zeros = {"conv2d": {"x": cai((2, 0, 5, 6), ptr=0), "w": cai((6, 0, 3, 2), ptr=0)},
             "conv2d_backward_input": {"gy": cai((2, 0, 5, 3), ptr=0), "w": cai((0, 4, 3, 2), ptr=0)},
             "conv2d_backward_weight": {"gy": cai((0, 6, 5, 3), ptr=0), "x": cai((0, 4, 5, 6), ptr=0)}}[fn]
    args = {**GOOD[fn](), **zeros}
    if fn != "conv2d_backward_weight":
        args["groups"] = 1  # no input channels (forward), no output channels (input gradient)
    launches_without_gpu(fn, args)


# ---- the weight gradient's workspace ----------------------------------------------------------

RESNET = ((64, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1)


def test_weight_workspace_query():
    need = _cuda.conv2d_backward_weight_workspace(*RESNET)
    assert need > 0 and need % (64 * 64 * 9) == 0  # whole copies of gw, one per chunk
    assert _cuda.conv2d_backward_weight_workspace([64, 64, 56, 56], [64, 64, 3, 3], [1, 1], [1, 1], [1, 1],
                                                  np.int64(1)) == need
    # Few output pixels (one chunk) or many weight tiles (enough blocks already): none needed.
    assert _cuda.conv2d_backward_weight_workspace((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1) == 0
    assert _cuda.conv2d_backward_weight_workspace((8, 2048, 7, 7), (2048, 2048, 3, 3), (1, 1), (1, 1), (1, 1), 1) == 0
    assert _cuda.conv2d_backward_weight_workspace((0, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1) == 0
    fn = "conv2d_backward_weight_workspace"
    for bad in ((64, 64, 56), (64, 64, 56, 56, 1)):
        with raises_naming(ValueError, fn, "_cuda", "(N, C, H, W)"):
            _cuda.conv2d_backward_weight_workspace(bad, *RESNET[1:])
    with raises_naming(ValueError, fn, "_cuda", "'x_shape'", "negative"):
        _cuda.conv2d_backward_weight_workspace((64, -1, 56, 56), *RESNET[1:])
    for bad in (None, "abcd", 64, (64.0, 64, 56, 56)):
        with raises_naming(TypeError, fn, "_cuda", "'x_shape'"):
            _cuda.conv2d_backward_weight_workspace(bad, *RESNET[1:])
    with raises_naming(TypeError, fn, "_cuda", "'w_shape'"):
        _cuda.conv2d_backward_weight_workspace(RESNET[0], None, *RESNET[2:])
    with raises_naming(ValueError, fn, "_cuda", "groups"):
        _cuda.conv2d_backward_weight_workspace(*RESNET[:5], 3)
    with raises_naming(ValueError, fn, "_cuda", "'stride'", ">="):
        _cuda.conv2d_backward_weight_workspace(RESNET[0], RESNET[1], (0, 1), *RESNET[3:])


def resnet_weight_args():
    x, w, s, p, d, g = RESNET
    return {"gy": cai((64, 64, 56, 56)), "x": cai(x), "stride": s, "padding": p, "dilation": d, "groups": g,
            "gw": cai(w)}


def run_with_workspace(args, ws, **kw):
    call("conv2d_backward_weight", args, workspace=None if ws is None else Fake(ws), **kw)


def test_weight_workspace_argument():
    fn = "conv2d_backward_weight"
    need = _cuda.conv2d_backward_weight_workspace(*RESNET)
    for label, transform, exc, fragment in BAD:
        if label == "strides fortran":
            continue  # a 1-D array in Fortran order is C-contiguous too
        with raises_naming(exc, fn, "_cuda", "'workspace'", fragment):
            run_with_workspace(resnet_weight_args(), transform(cai((need,))))
    with raises_naming(ValueError, fn, "_cuda", "'workspace'", "writeable"):
        run_with_workspace(resnet_weight_args(), cai((need,), readonly=True))
    with raises_naming(ValueError, fn, "_cuda", "'workspace'", f"at least {need}"):
        run_with_workspace(resnet_weight_args(), cai((need - 1,)))
    args = resnet_weight_args()
    with raises_naming(ValueError, fn, "_cuda", "'workspace'", "'gy'", "share memory"):
        run_with_workspace(args, cai((need,), ptr=args["gy"]["data"][0] + 4 * 1000))
    with raises_naming(ValueError, fn, "_cuda", "'gw'", "'workspace'", "share memory"):
        run_with_workspace(args, cai((need,), ptr=args["gw"]["data"][0] - 4))
    with pytest.raises(TypeError):  # keyword-only
        _cuda.conv2d_backward_weight(*(Fake(v) if isinstance(v, dict) else v for v in args.values()), 0,
                                     Fake(cai((need,))))
    if not GPU:
        for ws in (cai((need + 10, 2)), None):  # any shape with enough elements, or none
            with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
                run_with_workspace(resnet_weight_args(), ws)
        small = {**GOOD[fn]()}
        with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
            run_with_workspace(small, cai((0,), ptr=0))  # none needed: an empty one is fine


# ---- the kernel version (1 float32, 2 TF32 tensor cores) ---------------------------------------

@pytest.mark.parametrize("fn", CONV)
def test_conv_version(fn):
    for bad in (-1, 3, 10 ** 12):
        with raises_naming(ValueError, fn, "_cuda", "version", "0 (the default kernel), 1 (float32) or 2"):
            call(fn, GOOD[fn](), version=bad)
    for bad in (None, 2.0, "2", True):
        with raises_naming(TypeError, fn, "_cuda", "'version'"):
            call(fn, GOOD[fn](), version=bad)
    with pytest.raises(TypeError):  # keyword-only
        getattr(_cuda, fn)(*(Fake(v) if isinstance(v, dict) else v for v in GOOD[fn]().values()), 0, 2)
    # The other checks come first whatever the version.
    args = {**GOOD[fn](), "groups": 3}
    with raises_naming(ValueError, fn, "_cuda", "groups"):
        call(fn, args, version=2)
    if not GPU:
        for version in (0, 1, 2, np.int64(2)):
            launches_without_gpu(fn, GOOD[fn](), version=version)


def test_weight_workspace_per_version():
    fn = "conv2d_backward_weight_workspace"
    v1 = _cuda.conv2d_backward_weight_workspace(*RESNET)
    assert _cuda.conv2d_backward_weight_workspace(*RESNET, version=1) == v1
    v2 = _cuda.conv2d_backward_weight_workspace(*RESNET, version=2)
    assert v2 > 0 and v2 % (64 * 64 * 9) == 0  # whole copies of gw, one per chunk
    assert _cuda.conv2d_backward_weight_workspace((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1,
                                                  version=2) == 0
    with raises_naming(ValueError, fn, "_cuda", "version"):
        _cuda.conv2d_backward_weight_workspace(*RESNET, version=3)
    with raises_naming(TypeError, fn, "_cuda", "'version'"):
        _cuda.conv2d_backward_weight_workspace(*RESNET, version="2")
    # The weight gradient checks the workspace against its own version's size.
    small, big = sorted((v1, v2))
    version_needing_more = 2 if v2 > v1 else 1
    if small != big:
        with raises_naming(ValueError, "conv2d_backward_weight", "_cuda", "'workspace'", f"at least {big}"):
            run_with_workspace(resnet_weight_args(), cai((small,)), version=version_needing_more)
    if not GPU:
        with raises_naming(RuntimeError, "conv2d_backward_weight", "_cuda", "CUDA error"):
            run_with_workspace(resnet_weight_args(), cai((v2,)), version=2)


# ---- pooling geometry -------------------------------------------------------------------------

def test_pool_geometry():
    for fn in POOL:
        windows = ["kernel", "stride", "padding"] + (["dilation"] if fn.startswith("max") else [])
        for name in windows:
            low = (-1, 0) if name == "padding" else (0, 1)
            args = {**GOOD[fn](), name: low}
            with raises_naming(ValueError, fn, "_cuda", f"'{name}'", ">="):
                call(fn, args)
            for bad in (2, (1, 1, 1), "11", (1.0, 1), (False, 1), None):
                args = {**GOOD[fn](), name: bad}
                with raises_naming(TypeError, fn, "_cuda", f"'{name}'"):
                    call(fn, args)
        flags = ["ceil_mode"] + (["count_include_pad"] if fn.startswith("avg") else [])
        for name in flags:
            for bad in (1, 0, None, "yes", np.bool_(True)):
                args = {**GOOD[fn](), name: bad}
                with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "bool"):
                    call(fn, args)
        image = "x" if fn in ("max_pool2d", "avg_pool2d") else "gx"
        with raises_naming(ValueError, fn, "_cuda", "(N, C, H, W)"):
            call(fn, {**GOOD[fn](), image: cai((3, 7, 5))})
        # windows that cannot fit: (9, 9) windows on a 7 x 5 image padded by 1, without ceil mode
        with raises_naming(ValueError, fn, "_cuda", "larger than the padded input"):
            call(fn, {**GOOD[fn](), "kernel": (9, 9), "ceil_mode": False})
        with raises_naming(ValueError, fn, "_cuda", "below 2^31"):
            call(fn, {**GOOD[fn](), "stride": (2 ** 31, 1)})


@pytest.mark.parametrize("fn", POOL)
def test_pool_shapes(fn):
    pooled = [n for n in ("out", "arg", "gy") if n in GOOD[fn]()]
    for name in pooled:
        args = GOOD[fn]()
        args[name] = {**args[name], "shape": (2, 3, 4, 4), "strides": None}
        expect = "(2, 3, 4, 5)" if fn.startswith("max") else "(2, 3, 4, 3)"
        with raises_naming(ValueError, fn, "_cuda", f"'{name}'", expect, "(2, 3, 4, 4)"):
            call(fn, args)


@pytest.mark.parametrize("fn", ["max_pool2d", "max_pool2d_backward"])
def test_pool_arg_is_int64(fn):
    args = GOOD[fn]()
    args["arg"] = cai(args["arg"]["shape"])  # float32
    with raises_naming(TypeError, fn, "_cuda", "'arg'", "int64", "'<f4'"):
        call(fn, args)
    args["arg"] = i64(args["arg"]["shape"], ptr=(1 << 44) + 4)
    with raises_naming(ValueError, fn, "_cuda", "'arg'", "aligned to 8 bytes"):
        call(fn, args)
    for name, v in GOOD[fn]().items():
        if isinstance(v, dict) and name != "arg":
            args = GOOD[fn]()
            args[name] = {**v, "typestr": "<i8"}
            with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "float32", "'<i8'"):
                call(fn, args)


@pytest.mark.parametrize("fn", ["avg_pool2d", "avg_pool2d_backward"])
def test_divisor_override(fn):
    args = {**GOOD[fn](), "divisor_override": 0}
    with raises_naming(ValueError, fn, "_cuda", "divisor_override", "non-zero"):
        call(fn, args)
    for bad in (2.0, "2", True, (2,)):
        args = {**GOOD[fn](), "divisor_override": bad}
        with raises_naming(TypeError, fn, "_cuda", "'divisor_override'", "int"):
            call(fn, args)
    if not GPU:
        for good in (None, 3, -4, np.int64(9)):
            launches_without_gpu(fn, {**GOOD[fn](), "divisor_override": good})


@pytest.mark.parametrize("fn", POOL)
def test_pool_empty_arrays_need_no_gpu(fn):
    args = GOOD[fn]()
    for name, v in args.items():
        if isinstance(v, dict):
            args[name] = {**v, "shape": (0,) + v["shape"][1:], "data": (0, False)}
    assert call(fn, args) is None


# ---- conv2d's fused epilogue: bias (O,) and activation, keyword-only ---------------------------

def conv_with(**kw):
    call("conv2d", GOOD["conv2d"](), **kw)


# A 1-D array's Fortran strides are its C strides: that case is no error for the bias.
BAD_1D = [c for c in BAD if c[0] != "strides fortran"]


@pytest.mark.parametrize("label,transform,exc,fragment", BAD_1D, ids=[c[0] for c in BAD_1D])
def test_conv_bad_bias_interface(label, transform, exc, fragment):
    with raises_naming(exc, "conv2d", "_cuda", "'bias'", fragment):
        conv_with(bias=Fake(transform(cai((6,)))))


@pytest.mark.parametrize("bad", [np.zeros(6, np.float32), [1.0] * 6, 5], ids=["numpy", "list", "int"])
def test_conv_bias_not_a_cuda_array(bad):
    with raises_naming(TypeError, "conv2d", "_cuda", "'bias'", "__cuda_array_interface__"):
        conv_with(bias=bad)


@pytest.mark.parametrize("shape", [(5,), (7,), (4,), (6, 1), (1, 6), ()])
def test_conv_bias_shape_is_out_channels(shape):
    # one per output channel (O = 6), not per input channel (4) or per group
    with raises_naming(ValueError, "conv2d", "_cuda", "'bias'", "(6,)"):
        conv_with(bias=Fake(cai(shape)))


def test_conv_bias_must_not_overlap_out():
    args = GOOD["conv2d"]()
    out = args["out"]["data"][0]
    with raises_naming(ValueError, "conv2d", "_cuda", "'out'", "'bias'", "share memory"):
        call("conv2d", args, bias=Fake(cai((6,), ptr=out + 16)))


@pytest.mark.parametrize("bad,exc,fragment", [("gelu", ValueError, "'none' or 'relu'"),
                                              ("RELU", ValueError, "'none' or 'relu'"),
                                              (None, TypeError, "str"), (1, TypeError, "str")])
def test_conv_activation(bad, exc, fragment):
    with raises_naming(exc, "conv2d", "_cuda", "activation", fragment):
        conv_with(activation=bad)


def test_conv_epilogue_is_keyword_only():
    values = [Fake(v) if isinstance(v, dict) else v for v in GOOD["conv2d"]().values()]
    with pytest.raises(TypeError):
        _cuda.conv2d(*values, 0, 0, Fake(cai((6,))))
    with pytest.raises(TypeError):
        _cuda.conv2d(*values, 0, 0, None, "relu")


@no_gpu
@pytest.mark.parametrize("version", [0, 1, 2])
def test_conv_epilogue_reaches_the_launch(version):
    launches_without_gpu("conv2d", GOOD["conv2d"](), version=version, bias=Fake(cai((6,), readonly=True)),
                         activation="relu")
    launches_without_gpu("conv2d", GOOD["conv2d"](), version=version, bias=None, activation="none")
