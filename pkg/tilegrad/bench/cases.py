"""The kernel cases of the bench: what each op computes, through tilegrad's public API and
through each peer, at which sizes, and how close a result must be to the float64 NumPy answer
(the dtype's tolerance from ``tilegrad.testing.TOLERANCES``, widened for long sums).

Each ``OpSpec.array(xp, *arrays)`` is written against ``xp``: it is the NumPy peer, the CuPy
peer on a GPU, and, run on float64 copies of the inputs, the oracle every result is checked
against before it is timed.
"""
import math
from typing import Callable, NamedTuple, Optional

import numpy as np

from tilegrad import testing
from tilegrad.ops.base import Cost


class OpSpec(NamedTuple):
    name: str           # the bench's name for the case (``--ops``)
    table: str          # the op-table entry whose ``cost()`` gives flops and bytes
    kernel: str         # the backend kernel the op's forward calls
    inputs: Callable    # (rng, size) -> tuple of float64 NumPy arrays (cast to the dtype benched)
    params: Callable    # size -> extra arguments of the op's cost() after the arrays
    tilegrad: Callable  # (*tensors) -> Tensor, through tilegrad's public API
    array: Callable     # (xp, *arrays) -> array: the NumPy/CuPy peer and the float64 oracle
    torch: Callable     # (torch, *tensors) -> tensor
    tol: Callable       # (size, dtype) -> (rtol, atol) of a result against the float64 oracle
    label: Callable     # size -> text for the table
    from_n: Callable    # N of ``--sizes N,...`` -> this op's size (elements, or a shape)
    # size -> arguments that tilegrad, array and torch take after the arrays (a pooling window),
    # for ops whose parameters change with the size; None: they take the arrays only
    extra: Optional[Callable] = None
    # (*arrays, *params) -> Cost of what the case times, when that is more than the op's forward
    # (a forward and backward); None: the op-table entry's cost()
    cost: Optional[Callable] = None


def at_size(spec, size):
    """``spec`` with its tilegrad, array and torch callables given this size's extra arguments."""
    if spec.extra is None:
        return spec
    extra = spec.extra(size)
    return spec._replace(tilegrad=lambda *t: spec.tilegrad(*t, *extra),
                         array=lambda xp, *a: spec.array(xp, *a, *extra),
                         torch=lambda torch, *t: spec.torch(torch, *t, *extra), extra=None)


def _randn(rng, shape):
    return rng.standard_normal(shape)


def _softmax(xp, x):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _shape_label(shape):
    return "x".join(str(n) for n in shape)


def _count_label(n):
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _tol(grow=lambda size: 1.0):
    """The dtype's tolerance, atol widened by ``grow(size)`` (rounding of long sums grows like the
    square root of their length)."""
    def tol(size, dtype):
        rtol, atol = testing.tolerance(dtype)
        return rtol, atol * grow(size)
    return tol


def _reference_gelu(x):
    from tilegrad.backends import reference_nn  # the exact (erf) form, NumPy or CuPy
    return reference_nn.gelu(x, "none")


def _tilegrad_functional():
    import tilegrad.nn.functional as F
    return F


def _rows_of_1024(n):
    """N elements as rows of up to 1024 (softmax along the last dim)."""
    cols = min(n, 1024)
    return (max(1, n // cols), cols)


_ELEMENTWISE = dict(tol=_tol(), label=_count_label, from_n=int)

SPECS = {
    "relu": OpSpec(
        "relu", "Relu", "relu",
        inputs=lambda rng, n: (_randn(rng, (n,)),),
        params=lambda n: (),
        tilegrad=lambda x: x.relu(),
        array=lambda xp, x: xp.maximum(x, x.dtype.type(0)),
        torch=lambda torch, x: torch.relu(x),
        **_ELEMENTWISE),
    "gelu": OpSpec(
        "gelu", "Gelu", "gelu",
        inputs=lambda rng, n: (_randn(rng, (n,)),),
        params=lambda n: ("none",),
        tilegrad=lambda x: _tilegrad_functional().gelu(x),
        array=lambda xp, x: _reference_gelu(x),
        torch=lambda torch, x: torch.nn.functional.gelu(x),
        **_ELEMENTWISE),
    "add": OpSpec(
        "add", "Add", "add",
        inputs=lambda rng, n: (_randn(rng, (n,)), _randn(rng, (n,))),
        params=lambda n: (),
        tilegrad=lambda a, b: a + b,
        array=lambda xp, a, b: a + b,
        torch=lambda torch, a, b: a + b,
        **_ELEMENTWISE),
    "softmax": OpSpec(
        "softmax", "Softmax", "softmax",
        inputs=lambda rng, shape: (_randn(rng, shape),),
        params=lambda shape: (-1,),
        tilegrad=lambda x: x.softmax(-1),
        array=_softmax,
        torch=lambda torch, x: torch.softmax(x, -1),
        tol=_tol(), label=_shape_label, from_n=_rows_of_1024),
    "matmul": OpSpec(
        "matmul", "MatMul", "matmul",
        inputs=lambda rng, n: (_randn(rng, (n, n)), _randn(rng, (n, n))),
        params=lambda n: (),
        tilegrad=lambda a, b: a @ b,
        array=lambda xp, a, b: a @ b,
        torch=lambda torch, a, b: a @ b,
        # dot products of length n drift like sqrt(n) roundings of terms of size ~1
        tol=_tol(lambda n: 8 * math.sqrt(n)), label=lambda n: f"{n}x{n}x{n}", from_n=int),
    "sum": OpSpec(
        "sum", "Sum", "sum",
        inputs=lambda rng, n: (_randn(rng, (n,)),),
        params=lambda n: (None, False),
        tilegrad=lambda x: x.sum(),
        array=lambda xp, x: x.sum(),
        torch=lambda torch, x: x.sum(),
        tol=_tol(math.sqrt), label=_count_label, from_n=int),
}



# ---- pooling and the cross-entropy loss ---------------------------------------------------------
# A pooling size is (input shape, (kernel, stride, padding)): square windows, as networks use.
def _pool_label(size):
    shape, (k, st, p) = size
    return f"{_shape_label(shape)} k{k}s{st}p{p}"


def _pool_from_n(n):
    return ((max(1, n // (64 * 56 * 56)), 64, 56, 56), (3, 2, 1))


def _max_pool_array(xp, x, k, s, p):
    from tilegrad.backends import reference_nn
    return reference_nn.max_pool2d(x, (k, k), (s, s), (p, p), (1, 1), False)[0]


def _avg_pool_array(xp, x, k, s, p):
    from tilegrad.backends import reference_nn
    return reference_nn.avg_pool2d(x, (k, k), (s, s), (p, p), False, True, None)


def _pool_params(size):
    k, s, p = size[1]
    return ((k, k), (s, s), (p, p), (1, 1), False)


_POOL = dict(inputs=lambda rng, size: (_randn(rng, size[0]),), params=_pool_params, tol=_tol(), label=_pool_label,
             from_n=_pool_from_n, extra=lambda size: size[1])


def _ce_step(F):
    """A training step of the loss: the gradient of the mean cross-entropy with respect to the
    logits (F is tilegrad.nn.functional or torch.nn.functional; both tensor types have detach
    and requires_grad_)."""
    def step(x, target):
        x = x.detach().requires_grad_()
        F.cross_entropy(x, target).backward()
        return x.grad
    return step


def _ce_step_array(xp, x, target):
    g = _softmax(xp, x)
    g[xp.arange(x.shape[0]), target] -= 1
    return g / x.shape[0]


def _ce_step_cost(x, target, *_):
    from tilegrad import ops
    forward = ops.OPS["CrossEntropy"].cost(x, target)
    # the backward reads the logits again, exponentiates each and writes the gradient
    return Cost(2 * forward.flops, forward.bytes + 2 * x.nbytes)


SPECS.update({
    "max_pool2d": OpSpec(
        "max_pool2d", "MaxPool2d", "max_pool2d",
        tilegrad=lambda x, k, s, p: _tilegrad_functional().max_pool2d(x, k, s, p),
        array=_max_pool_array,
        torch=lambda torch, x, k, s, p: torch.nn.functional.max_pool2d(x, k, s, p),
        **_POOL),
    "avg_pool2d": OpSpec(
        "avg_pool2d", "AvgPool2d", "avg_pool2d",
        tilegrad=lambda x, k, s, p: _tilegrad_functional().avg_pool2d(x, k, s, p),
        array=_avg_pool_array,
        torch=lambda torch, x, k, s, p: torch.nn.functional.avg_pool2d(x, k, s, p),
        **_POOL),
    "cross_entropy": OpSpec(  # forward and backward: the loss is only ever computed to train
        "cross_entropy", "CrossEntropy", "cross_entropy_forward",
        inputs=lambda rng, shape: (_randn(rng, shape), rng.integers(0, shape[1], shape[0])),
        params=lambda shape: (None, -100, 0.0, "mean"),
        tilegrad=lambda x, t: _ce_step(_tilegrad_functional())(x, t),
        array=_ce_step_array,
        torch=lambda torch, x, t: _ce_step(torch.nn.functional)(x, t),
        tol=_tol(), label=_shape_label, from_n=lambda n: (max(1, n // 1000), 1000), cost=_ce_step_cost),
})


# ---- attention: (batch, heads, sequence, head dim), forward and forward + backward ----------------
def _attention_shape(size):
    b, h, s, d = size
    return (b, h, s, d)


def _attention_inputs(rng, size):
    return tuple(_randn(rng, _attention_shape(size)) for _ in range(3))


def _attention_array(causal, with_backward):
    """The reference kernels (scores materialised) on xp arrays: the NumPy peer and, in float64,
    the oracle. Forward + backward runs with the output as its own upstream gradient (the
    gradient of sum(out ** 2) / 2) and returns the three gradients flattened end to end."""
    def array(xp, q, k, v):
        from tilegrad.backends import reference_attention as ref
        scale = 1 / math.sqrt(q.shape[-1])
        out, lse = ref.sdpa_forward(q, k, v, None, causal, scale)
        if not with_backward:
            return out
        grads = ref.sdpa_backward(q, k, v, None, causal, scale, out, lse, out)
        return xp.concatenate([g.reshape(-1) for g in grads])
    return array


def _attention_tilegrad(causal, with_backward):
    def run(q, k, v):
        import tilegrad
        import tilegrad.nn.functional as F
        if not with_backward:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(out.detach())
        return tilegrad.cat([t.grad.reshape(-1) for t in (q, k, v)])
    return run


def _attention_torch(causal, with_backward):
    def run(torch, q, k, v):
        if not with_backward:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(out.detach())
        return torch.cat([t.grad.reshape(-1) for t in (q, k, v)])
    return run


def _attention_spec(name, causal, with_backward):
    return OpSpec(
        name, "ScaledDotProductAttention", "sdpa_backward" if with_backward else "sdpa_forward",
        inputs=_attention_inputs,
        params=lambda size: (None, causal, None, with_backward),
        tilegrad=_attention_tilegrad(causal, with_backward),
        array=_attention_array(causal, with_backward),
        torch=_attention_torch(causal, with_backward),
        # outputs average over S values; gradients sum over S (keys) or L (queries) terms
        tol=_tol(lambda size: 4 * math.sqrt(size[2])), label=lambda size: "B{}xH{}xS{}xD{}".format(*size),
        from_n=lambda n: (8, 8, n, 64))


for _name, _causal, _backward in (("attention", False, False), ("attention_causal", True, False),
                                  ("attention_grad", False, True), ("attention_causal_grad", True, True)):
    SPECS[_name] = _attention_spec(_name, _causal, _backward)


# ---- conv2d: 3x3, stride 1, padding 1 (the ResNet body), forward and forward + backward ------------
# A size is (batch, channels in, height = width, channels out).
def _conv_inputs(rng, size):
    n, c, hw, k = size
    return _randn(rng, (n, c, hw, hw)), _randn(rng, (k, c, 3, 3)) / math.sqrt(9 * c)


def _conv_array(with_backward):
    """The reference kernels (im2col + BLAS) on xp arrays; forward + backward returns the input and
    weight gradients for an upstream gradient equal to the output, flattened end to end."""
    def array(xp, x, w):
        from tilegrad.backends import reference_nn as ref
        geometry = ((1, 1), (1, 1), (1, 1), 1)
        y = ref.conv2d(x, w, *geometry)
        if not with_backward:
            return y
        gx = ref.conv2d_backward_input(y, w, x.shape, *geometry)
        gw = ref.conv2d_backward_weight(y, x, w.shape, *geometry)
        return xp.concatenate([gx.reshape(-1), gw.reshape(-1)])
    return array


def _conv_run(F, cat, with_backward):
    def run(x, w):
        if not with_backward:
            return F.conv2d(x, w, padding=1)
        x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = F.conv2d(x, w, padding=1)
        y.backward(y.detach())
        return cat([x.grad.reshape(-1), w.grad.reshape(-1)])
    return run


def _conv_spec(name, with_backward):
    def tilegrad_run(x, w):
        import tilegrad
        return _conv_run(_tilegrad_functional(), tilegrad.cat, with_backward)(x, w)

    def cost(x, w, *_):
        from tilegrad import ops
        forward = ops.OPS["Conv2d"].cost(x, w)
        # the backward is two products of the forward's size (input and weight gradients)
        return Cost(3 * forward.flops, 3 * forward.bytes) if with_backward else forward
    return OpSpec(
        name, "Conv2d", "conv2d_backward_weight" if with_backward else "conv2d",
        inputs=_conv_inputs, params=lambda size: (),
        tilegrad=tilegrad_run, array=_conv_array(with_backward),
        torch=lambda torch, x, w: _conv_run(torch.nn.functional, torch.cat, with_backward)(x, w),
        # sums of 9 * C products (forward, input gradient) or of N * H * W (weight gradient)
        tol=_tol(lambda size: 4 * math.sqrt(9 * size[1] * (size[0] * size[2] ** 2 if with_backward else 1))),
        label=lambda size: "N{}xC{}x{}x{}xK{}".format(size[0], size[1], size[2], size[2], size[3]),
        from_n=lambda n: (8, 64, n, 64), cost=cost)


SPECS["conv2d"] = _conv_spec("conv2d", False)
SPECS["conv2d_grad"] = _conv_spec("conv2d_grad", True)

KERNEL_OPS = tuple(SPECS)
_ATTENTION = ("attention", "attention_causal", "attention_grad", "attention_causal_grad")

# Sizes per op, smallest first: elementwise and sum take an element count, softmax and cross_entropy
# a (rows, cols) shape, matmul the side of square matrices, pooling (input shape, (kernel, stride,
# padding)), attention (batch, heads, sequence, head dim), conv2d (batch, channels in, height =
# width, channels out) with 3x3 kernels and padding 1. ``--sizes N,...`` maps each N through
# ``from_n`` (attention: B8 H8 S=N D64, so ``--sizes 512`` is the B8 H8 S512 D64 case of "full";
# "quick" keeps a quarter-size one to stay quick, as the reference kernels materialise every score
# matrix).
SIZES = {
    "tiny": {"relu": [1000], "gelu": [1000], "add": [1000], "softmax": [(8, 33)], "matmul": [16], "sum": [1000],
             "max_pool2d": [((2, 4, 9, 11), (3, 2, 1))], "avg_pool2d": [((2, 4, 9, 11), (3, 2, 1))],
             "cross_entropy": [(16, 10)], **{a: [(1, 2, 16, 8)] for a in _ATTENTION},
             "conv2d": [(2, 3, 9, 4)], "conv2d_grad": [(2, 3, 9, 4)]},
    "quick": {"relu": [1 << 16, 1 << 22], "gelu": [1 << 16, 1 << 22], "add": [1 << 16, 1 << 22], "softmax": [(256, 256), (1024, 4096)],
              "matmul": [128, 1024], "sum": [1 << 16, 1 << 22],
              "max_pool2d": [((64, 32, 28, 28), (2, 2, 0)), ((8, 64, 56, 56), (3, 2, 1))],
              "avg_pool2d": [((64, 32, 28, 28), (2, 2, 0)), ((8, 64, 56, 56), (3, 2, 1))],
              "cross_entropy": [(128, 10), (4096, 1000)], **{a: [(4, 8, 256, 64)] for a in _ATTENTION},
              "conv2d": [(8, 64, 32, 64)], "conv2d_grad": [(8, 64, 32, 64)]},
    "full": {"relu": [1 << 12, 1 << 16, 1 << 20, 1 << 24], "gelu": [1 << 16, 1 << 24],
             "add": [1 << 12, 1 << 16, 1 << 20, 1 << 24],
             "softmax": [(64, 128), (1024, 1024), (4096, 4096), (256, 32768)],
             "matmul": [64, 256, 1024, 2048], "sum": [1 << 12, 1 << 16, 1 << 20, 1 << 24],
             "max_pool2d": [((64, 32, 28, 28), (2, 2, 0)), ((32, 64, 56, 56), (3, 2, 1))],
             "avg_pool2d": [((64, 32, 28, 28), (2, 2, 0)), ((32, 64, 56, 56), (3, 2, 1))],
             "cross_entropy": [(128, 10), (4096, 1000), (256, 32768)],
             **{a: [(8, 8, 128, 64), (8, 8, 512, 64), (2, 8, 2048, 64)] for a in _ATTENTION},
             "conv2d": [(32, 64, 32, 64), (8, 128, 56, 128)], "conv2d_grad": [(32, 64, 32, 64)]},
}


def sizes_for(name, size_set):
    """The sizes of op ``name``: a named set ("tiny", "quick", "full") or a list of N."""
    if isinstance(size_set, str):
        return SIZES[size_set][name]
    return [SPECS[name].from_n(n) for n in size_set]


def check(actual, expected, tol):
    """None when ``actual`` matches the float64 ``expected`` within ``tol``; otherwise a line
    saying how it does not."""
    rtol, atol = tol
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    a = actual.astype(np.float64)
    bad = ~np.isclose(a, expected, rtol=rtol, atol=atol)
    if not bad.any():
        return None
    err = np.where(bad, np.abs(a - expected), -1.0)
    i = np.unravel_index(int(np.argmax(err)), a.shape) if a.ndim else ()
    return (f"{int(bad.sum())} of {a.size} values out of tolerance (rtol={rtol:g}, atol={atol:g}); "
            f"worst {float(a[i]):.7g} vs expected {float(expected[i]):.7g}")
