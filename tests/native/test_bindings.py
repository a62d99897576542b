"""Every binding of tilegrad._cpu and every array binding of tilegrad._cuda
rejects bad arguments with the right Python exception and a message naming the
function; nothing crashes. _cuda arguments are fake objects carrying a
__cuda_array_interface__, so this runs without a GPU (validation happens
before any CUDA call)."""
import numpy as np
import pytest

try:
    from tilegrad import _cpu
except ImportError:
    _cpu = None
try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

needs_cpu = pytest.mark.skipif(_cpu is None, reason="tilegrad._cpu was not built")
needs_cuda_module = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")


def f32(*shape):
    return np.arange(1, int(np.prod(shape)) + 1, dtype=np.float32).reshape(shape)


# Good arguments per function, by name, as factories (fresh arrays per test).
def _unary():
    return {"x": f32(3, 4), "out": f32(3, 4)}


def _unary_backward(first):
    return lambda: {first: f32(3, 4), "gy": f32(3, 4), "out": f32(3, 4)}


CPU_GOOD = {
    "relu": lambda: {"x": f32(3, 4), "out": f32(3, 4)},
    "relu_backward": lambda: {"x": f32(3, 4), "gy": f32(3, 4), "out": f32(3, 4)},
    "matmul": lambda: {"a": f32(3, 4), "b": f32(4, 5), "out": f32(3, 5)},
    "softmax": lambda: {"x": f32(3, 4), "dim": 1, "out": f32(3, 4)},
    "log_softmax": lambda: {"x": f32(3, 4), "dim": 0, "out": f32(3, 4)},
    "softmax_backward": lambda: {"y": f32(3, 4), "gy": f32(3, 4), "dim": -1, "out": f32(3, 4)},
    "log_softmax_backward": lambda: {"y": f32(3, 4), "gy": f32(3, 4), "dim": 0, "out": f32(3, 4)},
    "sigmoid": _unary, "tanh": _unary, "silu": _unary,
    "gelu": lambda: {"x": f32(3, 4), "approximate": "none", "out": f32(3, 4)},
    "leaky_relu": lambda: {"x": f32(3, 4), "slope": 0.1, "out": f32(3, 4)},
    "sigmoid_backward": _unary_backward("y"), "tanh_backward": _unary_backward("y"),
    "silu_backward": _unary_backward("x"),
    "gelu_backward": lambda: {"x": f32(3, 4), "gy": f32(3, 4), "approximate": "tanh", "out": f32(3, 4)},
    "leaky_relu_backward": lambda: {"x": f32(3, 4), "gy": f32(3, 4), "slope": 0.1, "out": f32(3, 4)},
    "layer_norm": lambda: {"x": f32(2, 3, 4), "weight": f32(3, 4), "bias": f32(3, 4), "n_dims": 2, "eps": 1e-5,
                           "y": f32(2, 3, 4), "mean": f32(2, 1, 1), "rstd": f32(2, 1, 1)},
    "layer_norm_backward": lambda: {"x": f32(2, 3, 4), "weight": f32(3, 4), "mean": f32(2, 1, 1),
                                    "rstd": f32(2, 1, 1), "gy": f32(2, 3, 4), "n_dims": 2,
                                    "gx": f32(2, 3, 4), "gweight": f32(3, 4), "gbias": f32(3, 4)},
    "conv2d": lambda: {"x": f32(2, 4, 5, 6), "w": f32(6, 2, 3, 2), "stride": (1, 2), "padding": (1, 0),
                       "dilation": (1, 1), "groups": 2, "out": f32(2, 6, 5, 3)},
    "conv2d_backward_input": lambda: {"gy": f32(2, 6, 5, 3), "w": f32(6, 2, 3, 2), "stride": (1, 2),
                                      "padding": (1, 0), "dilation": (1, 1), "groups": 2, "gx": f32(2, 4, 5, 6)},
    "conv2d_backward_weight": lambda: {"gy": f32(2, 6, 5, 3), "x": f32(2, 4, 5, 6), "stride": (1, 2),
                                       "padding": (1, 0), "dilation": (1, 1), "groups": 2, "gw": f32(6, 2, 3, 2)},
    "sdpa_forward": lambda: {"q": f32(2, 3, 4), "k": f32(2, 5, 4), "v": f32(2, 5, 6), "mask": np.ones((2, 1, 5), bool),
                             "is_causal": True, "scale": 0.5, "out": f32(2, 3, 6), "lse": f32(2, 3)},
    "sdpa_backward": lambda: {"q": f32(2, 3, 4), "k": f32(2, 5, 4), "v": f32(2, 5, 6), "mask": f32(1, 3, 5),
                              "is_causal": False, "scale": 0.5, "out": f32(2, 3, 6), "lse": f32(2, 3),
                              "gout": f32(2, 3, 6), "gq": f32(2, 3, 4), "gk": f32(2, 5, 4), "gv": f32(2, 5, 6)},
}
# Outputs by function (default: "out"); array arguments are the ndarray-valued ones.
CPU_OUTS = {"layer_norm": ("y", "mean", "rstd"), "layer_norm_backward": ("gx", "gweight", "gbias"),
            "conv2d_backward_input": ("gx",), "conv2d_backward_weight": ("gw",),
            "sdpa_forward": ("out", "lse"), "sdpa_backward": ("gq", "gk", "gv")}
CPU_ARGS = [(fn, name) for fn, make in CPU_GOOD.items() for name, v in make().items() if isinstance(v, np.ndarray)]
CPU_OUT_ARGS = [(fn, name) for fn in CPU_GOOD for name in CPU_OUTS.get(fn, ("out",))]
ELEMENTWISE = ["relu", "relu_backward", "softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
               "sigmoid", "tanh", "silu", "gelu", "leaky_relu", "sigmoid_backward", "tanh_backward",
               "silu_backward", "gelu_backward", "leaky_relu_backward"]


def call_cpu(fn, args):
    getattr(_cpu, fn)(*args.values())


def raises_naming(exc, fn, module, *fragments):
    """pytest.raises that also checks the message names module.fn and fragments."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc_info):
            handled = self.ctx.__exit__(*exc_info)
            msg = str(self.info.value)
            assert f"tilegrad.{module}.{fn}" in msg, msg
            for frag in fragments:
                assert frag in msg, f"{frag!r} not in {msg!r}"
            return handled

    return Check()


# --- tilegrad._cpu --------------------------------------------------------------------

@needs_cpu
def test_cpu_good_arguments_work():
    for fn, make in CPU_GOOD.items():
        call_cpu(fn, make())


@needs_cpu
@pytest.mark.parametrize("fn,name", CPU_ARGS)
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.float16, np.dtype(">f4")])
def test_cpu_wrong_dtype(fn, name, dtype):
    args = CPU_GOOD[fn]()
    args[name] = args[name].astype(dtype)
    with raises_naming(TypeError, fn, "_cpu", f"'{name}'", "float32", str(np.dtype(dtype))):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn,name", CPU_ARGS)
@pytest.mark.parametrize("bad", [None, [[1.0, 2.0]], 3.0, "x", memoryview(b"abcd")], ids=repr)
def test_cpu_not_an_array(fn, name, bad):
    if bad is None and name in ("weight", "bias", "mask"):
        pytest.skip("None means no weight / bias / mask")
    args = CPU_GOOD[fn]()
    args[name] = bad
    with raises_naming(TypeError, fn, "_cpu", f"'{name}'"):
        call_cpu(fn, args)


def non_contiguous_variants(arr):
    """Views of arr's shape (or close) that are not C-contiguous."""
    big = np.zeros(arr.shape[:-1] + (arr.shape[-1] * 2,), np.float32)
    return {
        "step2": big[..., ::2],
        "reversed": np.ascontiguousarray(arr)[::-1],
        "fortran": np.asfortranarray(arr),
        "transposed": np.ascontiguousarray(arr.T).T,
    }


@needs_cpu
@pytest.mark.parametrize("fn,name", CPU_ARGS)
@pytest.mark.parametrize("kind", ["step2", "reversed", "fortran", "transposed"])
def test_cpu_non_contiguous(fn, name, kind):
    args = CPU_GOOD[fn]()
    view = non_contiguous_variants(args[name])[kind]
    assert view.shape == args[name].shape
    if view.flags.c_contiguous:
        pytest.skip(f"a {kind} view of shape {view.shape} is still C-contiguous")
    args[name] = view
    with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "C-contiguous"):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn,name", CPU_OUT_ARGS)
def test_cpu_readonly_out(fn, name):
    args = CPU_GOOD[fn]()
    args[name].flags.writeable = False
    with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "writeable"):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn,name", CPU_ARGS)
def test_cpu_unaligned(fn, name):
    args = CPU_GOOD[fn]()
    if args[name].dtype == bool:
        pytest.skip("a bool array is always aligned")
    shape = args[name].shape
    raw = np.zeros(args[name].nbytes + 1, np.uint8)[1:]
    args[name] = raw.view(np.float32).reshape(shape)
    assert not args[name].flags.aligned
    with raises_naming(ValueError, fn, "_cpu", f"'{name}'", "aligned"):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("fn", ELEMENTWISE)
@pytest.mark.parametrize("name", ["x", "y", "out", "gy"])
def test_cpu_elementwise_shape_mismatch(fn, name):
    args = CPU_GOOD[fn]()
    if name not in args:
        pytest.skip(f"{fn} has no {name}")
    args[name] = f32(4, 3)
    with raises_naming(ValueError, fn, "_cpu", "(4, 3)", "(3, 4)"):
        call_cpu(fn, args)


@needs_cpu
@pytest.mark.parametrize("shapes", [
    ((3, 4), (5, 5), (3, 5)),           # inner sizes differ
    ((3, 4), (4, 5), (3, 6)),           # out columns wrong
    ((3, 4), (4, 5), (4, 5)),           # out rows wrong
    ((4,), (4, 5), (5,)),               # 1-D
    ((2, 3, 4), (4, 5), (2, 3, 5)),     # mixed ranks
    ((2, 3, 4), (3, 4, 5), (2, 3, 5)),  # batch mismatch
    ((2, 3, 4), (2, 4, 5), (3, 3, 5)),  # out batch mismatch
    ((1, 2, 3, 4), (1, 2, 4, 5), (1, 2, 3, 5)),  # 4-D
    ((), (), ()),                       # 0-d
])
def test_cpu_matmul_bad_shapes(shapes):
    a, b, out = (f32(*s) for s in shapes)
    with raises_naming(ValueError, "matmul", "_cpu", str(shapes[0]), str(shapes[1])):
        _cpu.matmul(a, b, out)


@needs_cpu
def test_cpu_matmul_out_aliases_input():
    buf = f32(4, 4)
    with raises_naming(ValueError, "matmul", "_cpu", "share memory"):
        _cpu.matmul(buf, f32(4, 4), buf)
    with raises_naming(ValueError, "matmul", "_cpu", "share memory"):
        _cpu.matmul(f32(4, 4), buf, buf)
    flat = np.zeros(32, np.float32)
    with raises_naming(ValueError, "matmul", "_cpu", "share memory"):  # partial overlap
        _cpu.matmul(flat[:16].reshape(4, 4), f32(4, 4), flat[8:24].reshape(4, 4))


@needs_cpu
def test_cpu_matmul_transpose_flags():
    # shapes are checked as the product sees them: a (K, M) with trans_a is an (M, K) operand
    _cpu.matmul(f32(3, 2), f32(3, 4), np.zeros((2, 4), np.float32), trans_a=True)
    _cpu.matmul(f32(2, 3), f32(4, 3), np.zeros((2, 4), np.float32), trans_b=True)
    with raises_naming(ValueError, "matmul", "_cpu", "(4, 3)"):
        _cpu.matmul(f32(3, 2), f32(3, 4), np.zeros((2, 4), np.float32), trans_b=True)
    for bad in (1, 0, None, "yes", np.bool_(True)):
        with raises_naming(TypeError, "matmul", "_cpu", "trans_a", "bool"):
            _cpu.matmul(f32(2, 2), f32(2, 2), np.zeros((2, 2), np.float32), trans_a=bad)
    with pytest.raises(TypeError):  # keyword-only
        _cpu.matmul(f32(2, 2), f32(2, 2), np.zeros((2, 2), np.float32), True)


@needs_cpu
def test_cpu_elementwise_partial_overlap():
    buf = np.zeros(20, np.float32)
    with raises_naming(ValueError, "relu", "_cpu", "overlaps"):
        _cpu.relu(buf[:10], buf[5:15])
    with raises_naming(ValueError, "relu_backward", "_cpu", "overlaps"):
        _cpu.relu_backward(f32(10), buf[:10], buf[5:15])
    _cpu.relu(buf[:10], buf[:10])  # exactly in place is fine
    _cpu.relu(buf[:10], buf[10:])  # adjacent is fine


@needs_cpu
def test_cpu_argument_count_and_keywords():
    with pytest.raises(TypeError):
        _cpu.relu(f32(3))
    with pytest.raises(TypeError):
        _cpu.matmul(f32(2, 2), f32(2, 2))
    _cpu.relu(x=f32(3), out=f32(3))
    _cpu.matmul(a=f32(2, 3), b=f32(3, 2), out=f32(2, 2))


class SubArray(np.ndarray):
    pass


@needs_cpu
def test_cpu_contiguous_views_and_subclasses_accepted():
    base = f32(4, 6)
    out = np.zeros((2, 6), np.float32)
    _cpu.relu(base[1:3], out)  # a row slice is still C-contiguous
    np.testing.assert_array_equal(out, base[1:3])
    eye = np.eye(3, dtype=np.float32).view(SubArray)
    outm = np.zeros((3, 3), np.float32)
    _cpu.matmul(eye, eye, outm)
    np.testing.assert_array_equal(outm, np.eye(3))


# --- tilegrad._cuda: fake __cuda_array_interface__ objects ---------------------------

class Fake:
    """An object exposing a given __cuda_array_interface__ (never dereferenced)."""

    def __init__(self, cai):
        self.__cuda_array_interface__ = cai


_next_ptr = [1 << 40]


def cai(shape, *, typestr="<f4", ptr=None, readonly=False, strides=None, **extra):
    if ptr is None:
        ptr = _next_ptr[0]
        _next_ptr[0] += 1 << 30  # distinct, non-overlapping fake buffers
    d = {"shape": shape, "typestr": typestr, "data": (ptr, readonly), "strides": strides, "version": 3}
    d.update(extra)
    return d


CUDA_GOOD = {
    "relu": lambda: {"x": cai((3, 4)), "out": cai((3, 4))},
    "relu_backward": lambda: {"x": cai((3, 4)), "gy": cai((3, 4)), "out": cai((3, 4))},
    "matmul": lambda: {"a": cai((3, 4)), "b": cai((4, 5)), "out": cai((3, 5))},
}
CUDA_ARGS = [(fn, name) for fn, make in CUDA_GOOD.items() for name in make()]


def call_cuda(fn, args, **kw):
    getattr(_cuda, fn)(*(a if not isinstance(a, dict) else Fake(a) for a in args.values()), **kw)


def drop(d, key):
    d = dict(d)
    del d[key]
    return d


# (label, transform of a good interface dict, expected exception, message fragment)
CUDA_BAD = [
    ("typestr f8", lambda d: {**d, "typestr": "<f8"}, TypeError, "float32"),
    ("typestr i4", lambda d: {**d, "typestr": "<i4"}, TypeError, "'<i4'"),
    ("typestr big-endian", lambda d: {**d, "typestr": ">f4"}, TypeError, "float32"),
    ("typestr not str", lambda d: {**d, "typestr": 4}, TypeError, "typestr"),
    ("no typestr", lambda d: drop(d, "typestr"), TypeError, "typestr"),
    ("no shape", lambda d: drop(d, "shape"), TypeError, "shape"),
    ("no data", lambda d: drop(d, "data"), TypeError, "data"),
    ("shape list", lambda d: {**d, "shape": list(d["shape"])}, TypeError, "tuple"),
    ("shape of str", lambda d: {**d, "shape": ("3", "4")}, TypeError, "shape"),
    ("negative dim", lambda d: {**d, "shape": (-1,) + d["shape"][1:]}, ValueError, "negative"),
    ("strides not C", lambda d: {**d, "strides": (4, 4 * d["shape"][0])}, ValueError, "C-contiguous"),
    ("strides reversed", lambda d: {**d, "strides": (-4 * d["shape"][1], -4)}, ValueError, "C-contiguous"),
    ("strides step 2", lambda d: {**d, "strides": (8 * d["shape"][1], 8)}, ValueError, "C-contiguous"),
    ("strides wrong rank", lambda d: {**d, "strides": (4,)}, TypeError, "strides"),
    ("null pointer", lambda d: {**d, "data": (0, d["data"][1])}, ValueError, "null"),
    ("unaligned pointer", lambda d: {**d, "data": (d["data"][0] + 2, d["data"][1])}, ValueError, "aligned"),
    ("data not tuple", lambda d: {**d, "data": d["data"][0]}, TypeError, "data"),
    ("data pointer str", lambda d: {**d, "data": ("0x10", False)}, TypeError, "pointer"),
    ("data pointer negative", lambda d: {**d, "data": (-16, False)}, TypeError, "pointer"),
    ("readonly not bool", lambda d: {**d, "data": (d["data"][0], "no")}, TypeError, "readonly"),
    ("masked", lambda d: {**d, "mask": Fake(cai(d["shape"]))}, ValueError, "mask"),
]


@needs_cuda_module
@pytest.mark.parametrize("fn,name", CUDA_ARGS)
@pytest.mark.parametrize("label,transform,exc,fragment", CUDA_BAD, ids=[c[0] for c in CUDA_BAD])
def test_cuda_bad_interface(fn, name, label, transform, exc, fragment):
    args = CUDA_GOOD[fn]()
    args[name] = transform(args[name])
    with raises_naming(exc, fn, "_cuda", f"'{name}'", fragment):
        call_cuda(fn, args)


@needs_cuda_module
@pytest.mark.parametrize("fn,name", CUDA_ARGS)
@pytest.mark.parametrize("bad", [None, np.zeros((3, 4), np.float32), [1.0], 5], ids=["None", "numpy", "list", "int"])
def test_cuda_not_a_cuda_array(fn, name, bad):
    args = CUDA_GOOD[fn]()
    args[name] = bad
    with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "__cuda_array_interface__"):
        call_cuda(fn, args)


@needs_cuda_module
@pytest.mark.parametrize("fn,name", CUDA_ARGS)
def test_cuda_interface_not_a_dict(fn, name):
    args = {k: Fake(v) for k, v in CUDA_GOOD[fn]().items()}
    args[name] = Fake([("shape", (3, 4))])
    with raises_naming(TypeError, fn, "_cuda", f"'{name}'", "dict"):
        getattr(_cuda, fn)(*args.values())


@needs_cuda_module
@pytest.mark.parametrize("fn", list(CUDA_GOOD))
def test_cuda_readonly_out(fn):
    args = CUDA_GOOD[fn]()
    args["out"] = {**args["out"], "data": (args["out"]["data"][0], True)}
    with raises_naming(ValueError, fn, "_cuda", "'out'", "writeable"):
        call_cuda(fn, args)


@needs_cuda_module
@pytest.mark.parametrize("fn", ["relu", "relu_backward"])
def test_cuda_elementwise_shape_mismatch(fn):
    args = CUDA_GOOD[fn]()
    args["out"] = cai((4, 3))
    with raises_naming(ValueError, fn, "_cuda", "(4, 3)", "(3, 4)"):
        call_cuda(fn, args)


@needs_cuda_module
@pytest.mark.parametrize("shapes", [
    ((3, 4), (5, 5), (3, 5)), ((3, 4), (4, 5), (3, 6)), ((4,), (4, 5), (5,)),
    ((2, 3, 4), (4, 5), (2, 3, 5)), ((2, 3, 4), (3, 4, 5), (2, 3, 5)), ((1, 2, 3, 4), (1, 2, 4, 5), (1, 2, 3, 5)),
])
def test_cuda_matmul_bad_shapes(shapes):
    a, b, out = (Fake(cai(s)) for s in shapes)
    with raises_naming(ValueError, "matmul", "_cuda", str(shapes[0])):
        _cuda.matmul(a, b, out)


@needs_cuda_module
def test_cuda_overlap_rejected():
    out = cai((4, 4), ptr=1 << 20)
    with raises_naming(ValueError, "matmul", "_cuda", "share memory"):
        _cuda.matmul(Fake(cai((4, 4), ptr=(1 << 20) + 32)), Fake(cai((4, 4))), Fake(out))
    with raises_naming(ValueError, "relu", "_cuda", "overlaps"):
        _cuda.relu(Fake(cai((4, 4), ptr=(1 << 20) + 32)), Fake(out))


@needs_cuda_module
@pytest.mark.parametrize("fn", list(CUDA_GOOD))
@pytest.mark.parametrize("stream", [-1, "0", 1.5, None])
def test_cuda_bad_stream(fn, stream):
    with raises_naming(TypeError, fn, "_cuda", "stream"):
        call_cuda(fn, CUDA_GOOD[fn](), stream=stream)


@needs_cuda_module
@pytest.mark.parametrize("fn", list(CUDA_GOOD))
def test_cuda_empty_arrays_need_no_gpu(fn):
    # Size 0: validated, then nothing to launch (null pointers are fine).
    shapes = {"relu": [(0, 4)] * 2, "relu_backward": [(0, 4)] * 3, "matmul": [(0, 4), (4, 5), (0, 5)]}[fn]
    args = [Fake(cai(s, ptr=0 if 0 in s else None)) for s in shapes]
    assert getattr(_cuda, fn)(*args, stream=0) is None


@needs_cuda_module
def test_cuda_explicit_contiguous_strides_accepted_by_validation():
    # Valid interfaces (explicit C strides, size-1 dims with odd strides) pass
    # validation; without a GPU the launch then reports the missing device.
    x = Fake(cai((3, 1, 4), strides=(16, 999, 4)))
    out = Fake(cai((3, 1, 4), strides=None))
    if _cuda.is_available():
        pytest.skip("a GPU is present: fake pointers must not reach a kernel")
    with raises_naming(RuntimeError, "relu", "_cuda", "CUDA error"):
        _cuda.relu(x, out)


@needs_cuda_module
def test_cuda_queries_without_raising():
    available = _cuda.is_available()
    assert isinstance(available, bool)
    count = _cuda.device_count()
    assert isinstance(count, int) and count >= 0
    assert available == (count > 0)
    assert _cuda.runtime_version() >= 13000
    assert isinstance(_cuda.driver_version(), int)
    assert _cuda.compiled_archs() == ["sm_80", "sm_90", "compute_90", "sm_90a"]  # sm_90a: the wgmma matmul
    if not available:
        with raises_naming(ValueError, "device_name", "_cuda", "out of range"):
            _cuda.device_name(0)
        with raises_naming(ValueError, "compute_capability", "_cuda", "out of range"):
            _cuda.compute_capability(0)
    else:
        assert isinstance(_cuda.device_name(0), str)
        major, minor = _cuda.compute_capability(0)
        assert major >= 1 and minor >= 0
