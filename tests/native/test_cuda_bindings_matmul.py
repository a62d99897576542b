"""Argument validation of tilegrad._cuda.matmul's layout flags, bias and activation, and of
tilegrad._cuda.bias_act. Arguments are fake objects carrying a __cuda_array_interface__, so this
runs without a GPU: everything is checked before any CUDA call. Calls whose arguments are all
valid would launch a kernel on the fake pointers, so those run only where no GPU is present (the
launch then reports the missing device)."""
import numpy as np
import pytest

from .test_bindings import Fake, cai, raises_naming
from .test_cuda_bindings import BAD, GPU, no_gpu

try:
    from tilegrad import _cuda
except ImportError:
    _cuda = None

pytestmark = pytest.mark.skipif(_cuda is None, reason="tilegrad._cuda was not built")


def _fake(v):
    return Fake(v) if isinstance(v, dict) else v


def matmul(a, b, out, **kw):
    _cuda.matmul(Fake(a), Fake(b), Fake(out), **{k: _fake(v) for k, v in kw.items()})


def reaches_launch(fn, call):
    """Valid arguments: without a GPU the launch reports the missing device."""
    if GPU:
        pytest.skip("a GPU is present: fake pointers must not reach a kernel")
    with raises_naming(RuntimeError, fn, "_cuda", "CUDA error"):
        call()


# ---- matmul: shapes as the flags say ------------------------------------------------------

GOOD_LAYOUTS = [  # (a, b, out, trans_a, trans_b)
    ((4, 3), (4, 5), (3, 5), True, False), ((3, 4), (5, 4), (3, 5), False, True),
    ((4, 3), (5, 4), (3, 5), True, True), ((2, 4, 3), (2, 5, 4), (2, 3, 5), True, True),
    ((2, 3, 4), (2, 4, 5), (2, 3, 5), False, False), ((3, 0), (5, 3), (0, 5), True, True),
]


@no_gpu
@pytest.mark.parametrize("a,b,out,ta,tb", GOOD_LAYOUTS)
@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_matmul_layouts_reach_the_launch(a, b, out, ta, tb, version):
    def run():
        matmul(cai(a), cai(b), cai(out), version=version, trans_a=ta, trans_b=tb, bias=cai((out[-1],)),
               activation="relu")
    if 0 in out:
        run()  # nothing to compute: no launch
    else:
        reaches_launch("matmul", run)


@pytest.mark.parametrize("a,b,out,ta,tb", [
    ((3, 4), (4, 5), (3, 5), True, False),   # a is (K, M) = (3, 4): the product is (4, 3) @ (4, 5)
    ((3, 4), (4, 5), (3, 5), False, True),   # b read as (5, 4)
    ((4, 3), (5, 4), (4, 5), True, True),    # out should be (3, 5)
    ((2, 4, 3), (3, 5, 4), (2, 3, 5), True, True),  # batches differ
])
def test_matmul_shapes_follow_the_flags(a, b, out, ta, tb):
    with raises_naming(ValueError, "matmul", "_cuda", "mismatched"):
        matmul(cai(a), cai(b), cai(out), trans_a=ta, trans_b=tb)


@pytest.mark.parametrize("name", ["trans_a", "trans_b"])
@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.bool_(True)], ids=repr)
def test_matmul_flags_are_bools(name, bad):
    with raises_naming(TypeError, "matmul", "_cuda", f"'{name}'", "bool"):
        matmul(cai((3, 4)), cai((4, 5)), cai((3, 5)), **{name: bad})


def test_matmul_new_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        _cuda.matmul(Fake(cai((3, 4))), Fake(cai((4, 5))), Fake(cai((3, 5))), 0, 0, True)


# ---- matmul: bias and activation ----------------------------------------------------------

# A 1-D array's Fortran strides are its C strides: that case is no error for the bias.
BAD_1D = [c for c in BAD if c[0] != "strides fortran"]


@pytest.mark.parametrize("label,transform,exc,fragment", BAD_1D, ids=[c[0] for c in BAD_1D])
def test_matmul_bad_bias_interface(label, transform, exc, fragment):
    with raises_naming(exc, "matmul", "_cuda", "'bias'", fragment):
        matmul(cai((3, 4)), cai((4, 5)), cai((3, 5)), bias=transform(cai((5,))))


@pytest.mark.parametrize("bad", [np.zeros(5, np.float32), [1.0] * 5, 5], ids=["numpy", "list", "int"])
def test_matmul_bias_not_a_cuda_array(bad):
    with raises_naming(TypeError, "matmul", "_cuda", "'bias'", "__cuda_array_interface__"):
        matmul(cai((3, 4)), cai((4, 5)), cai((3, 5)), bias=bad)


@pytest.mark.parametrize("shape", [(4,), (3,), (1, 5), (5, 1), ()], ids=str)
def test_matmul_bias_shape_is_n(shape):
    # N = 5 whatever the layout: (3, 4) @ (5, 4)^T
    with raises_naming(ValueError, "matmul", "_cuda", "'bias'", "(5,)"):
        matmul(cai((3, 4)), cai((5, 4)), cai((3, 5)), trans_b=True, bias=cai(shape))


def test_matmul_bias_must_not_overlap_out():
    out = cai((3, 5), ptr=1 << 20)
    with raises_naming(ValueError, "matmul", "_cuda", "'bias'", "share memory"):
        matmul(cai((3, 4)), cai((4, 5)), out, bias=cai((5,), ptr=(1 << 20) + 8))
    with raises_naming(ValueError, "matmul", "_cuda", "'a'", "share memory"):
        matmul(cai((4, 3), ptr=(1 << 20) + 4), cai((4, 5)), out, trans_a=True)


@no_gpu
def test_matmul_readonly_bias_accepted():
    reaches_launch("matmul", lambda: matmul(cai((3, 4)), cai((4, 5)), cai((3, 5)),
                                            bias=cai((5,), readonly=True)))


@pytest.mark.parametrize("bad,exc,fragment", [("gelu", ValueError, "'none' or 'relu'"),
                                              ("RELU", ValueError, "'none' or 'relu'"),
                                              (None, TypeError, "str"), (1, TypeError, "str")])
def test_matmul_activation(bad, exc, fragment):
    with raises_naming(exc, "matmul", "_cuda", "activation", fragment):
        matmul(cai((3, 4)), cai((4, 5)), cai((3, 5)), activation=bad)


# ---- bias_act -------------------------------------------------------------------------------

def bias_act_args():
    return {"y": cai((2, 3, 4)), "bias": cai((3,)), "dim": 1, "activation": "relu"}


def bias_act(args, **kw):
    _cuda.bias_act(*(_fake(v) for v in args.values()), **kw)


@pytest.mark.parametrize("name", ["y", "bias"])
@pytest.mark.parametrize("label,transform,exc,fragment", BAD, ids=[c[0] for c in BAD])
def test_bias_act_bad_interface(name, label, transform, exc, fragment):
    args = bias_act_args()
    if label == "strides fortran" and name == "bias":
        pytest.skip("a 1-D array is C- and Fortran-contiguous")
    args[name] = transform(args[name])
    with raises_naming(exc, "bias_act", "_cuda", f"'{name}'", fragment):
        bias_act(args)


@pytest.mark.parametrize("name", ["y", "bias"])
@pytest.mark.parametrize("bad", [np.zeros((2, 3, 4), np.float32), [1.0], 5], ids=["numpy", "list", "int"])
def test_bias_act_not_a_cuda_array(name, bad):
    args = bias_act_args()
    args[name] = bad
    with raises_naming(TypeError, "bias_act", "_cuda", f"'{name}'", "__cuda_array_interface__"):
        bias_act(args)


def test_bias_act_readonly_y():
    args = bias_act_args()
    args["y"] = cai((2, 3, 4), readonly=True)
    with raises_naming(ValueError, "bias_act", "_cuda", "'y'", "writeable"):
        bias_act(args)


@pytest.mark.parametrize("dim,y_shape", [(3, (2, 3, 4)), (-4, (2, 3, 4)), (0, ())], ids=str)
def test_bias_act_dim_out_of_range(dim, y_shape):
    args = {**bias_act_args(), "y": cai(y_shape), "dim": dim, "bias": None}
    with raises_naming(ValueError, "bias_act", "_cuda", "dim", "out of range"):
        bias_act(args)


@pytest.mark.parametrize("bad", [1.0, "1", True, None], ids=repr)
def test_bias_act_dim_is_an_int(bad):
    with raises_naming(TypeError, "bias_act", "_cuda", "'dim'", "int"):
        bias_act({**bias_act_args(), "dim": bad})


def test_bias_act_bias_shape_and_overlap():
    with raises_naming(ValueError, "bias_act", "_cuda", "'bias'", "(3,)"):
        bias_act({**bias_act_args(), "bias": cai((4,))})
    with raises_naming(ValueError, "bias_act", "_cuda", "'bias'", "(4,)"):
        bias_act({**bias_act_args(), "bias": cai((3,)), "dim": -1})
    y = cai((2, 3, 4), ptr=1 << 20)
    with raises_naming(ValueError, "bias_act", "_cuda", "'bias'", "share memory"):
        bias_act({**bias_act_args(), "y": y, "bias": cai((3,), ptr=(1 << 20) + 16)})


@pytest.mark.parametrize("bad,exc", [("tanh", ValueError), (None, TypeError)])
def test_bias_act_activation(bad, exc):
    with raises_naming(exc, "bias_act", "_cuda", "activation"):
        bias_act({**bias_act_args(), "activation": bad})


@pytest.mark.parametrize("stream", [-1, "0", 1.5, None])
def test_bias_act_bad_stream(stream):
    with raises_naming(TypeError, "bias_act", "_cuda", "stream"):
        bias_act(bias_act_args(), stream=stream)


@no_gpu
def test_bias_act_good_arguments_reach_the_launch():
    reaches_launch("bias_act", lambda: bias_act(bias_act_args()))
    reaches_launch("bias_act", lambda: bias_act({**bias_act_args(), "bias": None}, stream=12345))
    reaches_launch("bias_act", lambda: bias_act({**bias_act_args(), "bias": cai((3,), readonly=True),
                                                 "activation": "none"}))


def test_bias_act_nothing_to_do_launches_nothing():
    bias_act({**bias_act_args(), "bias": None, "activation": "none"})  # no bias, no activation
    bias_act({**bias_act_args(), "y": cai((2, 3, 0), ptr=0)})           # empty
