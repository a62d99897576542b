"""The CUDA backend: arrays are CuPy arrays (its memory pool, its current stream).
``tilegrad._cuda`` kernels run where they exist and apply; elsewhere the reference kernels run
on CuPy. Kernels are launched on CuPy's current stream and never synchronise.

The native kernels take float32 arrays (made C-contiguous here, or read transposed in place by
the GEMMs) and a preallocated output; matmul / linear, softmax, layer norm, the activations and
attention take float16 too. Other dtypes and arguments the kernels do not cover go to the
reference kernels.
"""

import math

import numpy as np

from . import precision, reference
from .native import (F32, I64, conv_geometry, divisor_override_covered, elementwise_covered, layer_norm_covered,
                     pool_geometry, softmax_covered)

try:
    from tilegrad import _cuda
except ImportError:  # built without a CUDA compiler: reference kernels on CuPy
    _cuda = None

F16 = np.dtype(np.float16)
HALF_OK = (F32, F16)  # the dtypes of the softmax, activation and layer-norm kernels
KERNELS = dict(reference.KERNELS)
REF = reference.KERNELS  # the reference kernels by name (the nn ones are not module attributes)


def _cupy():
    import cupy
    return cupy


def _stream():
    return _cupy().cuda.get_current_stream().ptr


def _c(a):
    return _cupy().asarray(a, order="C")  # keeps 0-d arrays 0-d


def relu(x):
    if not elementwise_covered(x):
        return reference.relu(x)
    cp = _cupy()
    x = _c(x)
    out = cp.empty_like(x)
    _cuda.relu(x, out, stream=_stream())
    return out


def relu_backward(x, gy):
    if not elementwise_covered(x, gy):
        return reference.relu_backward(x, gy)
    cp = _cupy()
    x, gy = _c(x), _c(gy)
    out = cp.empty_like(x)
    _cuda.relu_backward(x, gy, out, stream=_stream())
    return out


# ---- matmul, linear and their epilogue (kernels/cuda/matmul*.cu, bias_act.cu) --------------
def _matmul_version():
    """The TF32 tensor-core kernel (3) when set_float32_matmul_precision allows it, else the
    exact float32 default (0)."""
    return 3 if precision.allow_tf32() else 0


def _gemm_operand(x):
    """(array, transposed): x itself when C-contiguous, or the C-contiguous array that x is a
    transposed view of (a weight's .T, swapaxes(-1, -2) in backward), which the kernels read in
    place; (None, False) for other strides."""
    if x.flags.c_contiguous:
        return x, False
    swapped = x.swapaxes(-1, -2)
    if swapped.flags.c_contiguous:
        return swapped, True
    return None, False


def _gemm_dtype(*arrays):
    """float32 or float16 when every array (None skipped) has that one dtype, else None: the GEMM
    kernels' types (float16 on the tensor cores, float32 accumulation)."""
    dtype = arrays[0].dtype
    ok = dtype in (F32, F16) and all(a is None or a.dtype == dtype for a in arrays)
    return dtype if ok else None


def _gemm(a2, b2, out, trans_a, trans_b, bias=None, activation="none"):
    """out = act(op(a2) @ op(b2) + bias) by the float32 kernels or the float16 tensor-core one."""
    if out.dtype == F16:
        _cuda.matmul_half(a2, b2, out, stream=_stream(), trans_a=trans_a, trans_b=trans_b, bias=bias,
                          activation=activation)
    else:
        _cuda.matmul(a2, b2, out, stream=_stream(), version=_matmul_version(), trans_a=trans_a, trans_b=trans_b,
                     bias=bias, activation=activation)


def matmul(a, b):
    """2-D and equal-batch 3-D float32 or float16 products run natively, and so does a
    C-contiguous (..., M, K) @ (K, N) (a Linear layer on a batch of sequences) as one 2-D product;
    transposed operands are read in place. Other batches, vectors, dtypes and strides use the
    reference."""
    dtype = _gemm_dtype(a, b)
    if a.ndim > 2 and b.ndim == 2 and dtype is not None and a.flags.c_contiguous:
        return matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    if dtype is None or not (a.ndim == b.ndim and a.ndim in (2, 3) and (a.ndim == 2 or a.shape[0] == b.shape[0])):
        return reference.matmul(a, b)
    (a2, trans_a), (b2, trans_b) = _gemm_operand(a), _gemm_operand(b)
    if a2 is None or b2 is None:
        return reference.matmul(a, b)
    out = _cupy().empty(a.shape[:-1] + b.shape[-1:], dtype=dtype)
    _gemm(a2, b2, out, trans_a, trans_b)
    return out


# ---- softmax / log_softmax and the activations: float32 or float16 --------------------------


def linear(x, w, b, activation="none"):
    """activation(x @ w^T + b) as one kernel (float32, or float16 on the tensor cores): w (N, K)
    read in place (trans_b), the bias and activation applied as the output is stored. Other
    dtypes, strides and activations use the reference."""
    dtype = _gemm_dtype(x, w, b)
    if dtype is None or w.ndim != 2 or x.ndim < 1 or activation not in ("none", "relu") \
            or (b is not None and b.ndim != 1):
        return reference.linear(x, w, b, activation)
    rows = math.prod(x.shape[:-1])
    x2, trans_a = _gemm_operand(x.reshape(rows, x.shape[-1]))
    w2, trans_b = _gemm_operand(w.T)
    if x2 is None or w2 is None:
        return reference.linear(x, w, b, activation)
    out = _cupy().empty((rows, w.shape[0]), dtype=dtype)
    _gemm(x2, w2, out, trans_a, trans_b, None if b is None else _c(b), activation)
    return out.reshape(x.shape[:-1] + (w.shape[0],))


def bias_act(y, b, dim, activation):
    """In place on y (the op's fresh output) for C-contiguous float32; the reference otherwise."""
    if y.dtype != F32 or (b is not None and b.dtype != F32) or not y.flags.c_contiguous or y.ndim == 0 \
            or activation not in ("none", "relu") or not isinstance(dim, (int, np.integer)):
        return reference.bias_act(y, b, dim, activation)
    _cuda.bias_act(y, None if b is None else _c(b), int(dim), activation, stream=_stream())
    return y


# ---- softmax / log_softmax: any dim (the kernels take (outer, n, inner) layouts) ----------
def _softmax(native, ref):
    def kernel(x, dim):
        if not softmax_covered(x, dim, HALF_OK):
            return ref(x, dim)
        x = _c(x)
        out = _cupy().empty_like(x)
        native(x, int(dim), out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _softmax_backward(native, ref):
    def kernel(y, gy, dim):
        if not (elementwise_covered(y, gy, dtypes=HALF_OK) and softmax_covered(y, dim, HALF_OK)):
            return ref(y, gy, dim)
        y, gy = _c(y), _c(gy)
        out = _cupy().empty_like(y)
        native(y, gy, int(dim), out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _unary(native, ref):
    def kernel(x):
        if not elementwise_covered(x, dtypes=HALF_OK):
            return ref(x)
        x = _c(x)
        out = _cupy().empty_like(x)
        native(x, out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def _binary(native, ref):
    def kernel(a, gy):
        if not elementwise_covered(a, gy, dtypes=HALF_OK):
            return ref(a, gy)
        a, gy = _c(a), _c(gy)
        out = _cupy().empty_like(a)
        native(a, gy, out, stream=_stream())
        return out
    kernel.__name__ = getattr(ref, "__name__", "kernel")
    return kernel


def gelu(x, approximate):
    if not elementwise_covered(x, dtypes=HALF_OK) or approximate not in ("none", "tanh"):
        return REF["gelu"](x, approximate)
    x = _c(x)
    out = _cupy().empty_like(x)
    _cuda.gelu(x, approximate, out, stream=_stream())
    return out


def gelu_backward(x, gy, approximate):
    if not elementwise_covered(x, gy, dtypes=HALF_OK) or approximate not in ("none", "tanh"):
        return REF["gelu_backward"](x, gy, approximate)
    x, gy = _c(x), _c(gy)
    out = _cupy().empty_like(x)
    _cuda.gelu_backward(x, gy, approximate, out, stream=_stream())
    return out


def leaky_relu(x, slope):
    if not elementwise_covered(x, dtypes=HALF_OK):
        return REF["leaky_relu"](x, slope)
    x = _c(x)
    out = _cupy().empty_like(x)
    _cuda.leaky_relu(x, float(slope), out, stream=_stream())
    return out


def leaky_relu_backward(x, gy, slope):
    if not elementwise_covered(x, gy, dtypes=HALF_OK):
        return REF["leaky_relu_backward"](x, gy, slope)
    x, gy = _c(x), _c(gy)
    out = _cupy().empty_like(x)
    _cuda.leaky_relu_backward(x, gy, float(slope), out, stream=_stream())
    return out


# ---- layer norm ---------------------------------------------------------------------------
def _stat_shape(x, n_dims):
    return x.shape[:x.ndim - n_dims] + (1,) * n_dims


def layer_norm(x, weight, bias, n_dims, eps):
    """float32 or float16 x, weight, bias (one dtype); mean and rstd are float32 always."""
    if not layer_norm_covered(x, n_dims, weight, bias, dtypes=HALF_OK):
        return REF["layer_norm"](x, weight, bias, n_dims, eps)
    cp = _cupy()
    x = _c(x)
    weight = None if weight is None else _c(weight)
    bias = None if bias is None else _c(bias)
    y = cp.empty_like(x)
    mean = cp.empty(_stat_shape(x, n_dims), F32)
    rstd = cp.empty(_stat_shape(x, n_dims), F32)
    _cuda.layer_norm(x, weight, bias, int(n_dims), float(eps), y, mean, rstd, stream=_stream())
    return y, mean, rstd


def layer_norm_backward(x, weight, mean, rstd, gy, n_dims):
    if not layer_norm_covered(x, n_dims, weight, None, gy, dtypes=HALF_OK) or mean.dtype != F32 \
            or rstd.dtype != F32 \
            or mean.shape != _stat_shape(x, n_dims) or rstd.shape != _stat_shape(x, n_dims):
        return REF["layer_norm_backward"](x, weight, mean, rstd, gy, n_dims)
    cp = _cupy()
    x, gy, mean, rstd = _c(x), _c(gy), _c(mean), _c(rstd)
    weight = None if weight is None else _c(weight)
    gx = cp.empty_like(x)
    gweight = cp.empty(x.shape[x.ndim - n_dims:], x.dtype)
    gbias = cp.empty_like(gweight)
    rows = x.size // gweight.size if gweight.size else 0
    need = _cuda.layer_norm_backward_workspace(rows, gweight.size)
    workspace = cp.empty(need, F32) if need else None  # from CuPy's pool, freed back to it
    _cuda.layer_norm_backward(x, weight, mean, rstd, gy, int(n_dims), gx, gweight, gbias, stream=_stream(),
                              workspace=workspace)
    return gx, gweight, gbias


# ---- conv2d: float32 NCHW / OIHW of any valid geometry --------------------------------------
def _conv_version():
    """The conv kernels to run: 2 (TF32 tensor cores) when the user allows TF32
    (tilegrad.set_float32_matmul_precision("high"), as PyTorch's cuDNN convolutions), else 1 (float32)."""
    return 2 if precision.allow_tf32() else 1


def _conv2d_native(x, w, b, geo, groups, activation):
    out = _cupy().empty(geo[3], F32)
    _cuda.conv2d(_c(x), _c(w), *geo[:3], groups, out, stream=_stream(), version=_conv_version(),
                 bias=None if b is None else _c(b), activation=activation)
    return out


def conv2d(x, w, stride, padding, dilation, groups):
    geo = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if x.dtype != F32 or w.dtype != F32 or geo is None:
        return REF["conv2d"](x, w, stride, padding, dilation, groups)
    return _conv2d_native(x, w, None, geo, groups, "none")


def conv2d_bias_act(x, w, b, stride, padding, dilation, groups, activation):
    """act(conv2d(x, w) + b) with the bias and ReLU applied as the conv kernel stores its output
    (one pass over y instead of two); other dtypes, bias shapes and activations run conv2d and
    then bias_act, each with its own fallbacks."""
    geo = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    if x.dtype != F32 or w.dtype != F32 or geo is None or activation not in ("none", "relu") \
            or (b is not None and (b.dtype != F32 or b.shape != w.shape[:1])):
        return bias_act(conv2d(x, w, stride, padding, dilation, groups), b, 1, activation)
    return _conv2d_native(x, w, b, geo, groups, activation)


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    x_shape = tuple(int(n) for n in x_shape)
    geo = conv_geometry(x_shape, w.shape, stride, padding, dilation, groups)
    if gy.dtype != F32 or w.dtype != F32 or geo is None or geo[3] != gy.shape:
        return REF["conv2d_backward_input"](gy, w, x_shape, stride, padding, dilation, groups)
    gx = _cupy().empty(x_shape, F32)
    _cuda.conv2d_backward_input(_c(gy), _c(w), *geo[:3], groups, gx, stream=_stream(), version=_conv_version())
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    w_shape = tuple(int(n) for n in w_shape)
    geo = conv_geometry(x.shape, w_shape, stride, padding, dilation, groups)
    if gy.dtype != F32 or x.dtype != F32 or geo is None or geo[3] != gy.shape:
        return REF["conv2d_backward_weight"](gy, x, w_shape, stride, padding, dilation, groups)
    cp = _cupy()
    version = _conv_version()
    gw = cp.empty(w_shape, F32)
    need = _cuda.conv2d_backward_weight_workspace(x.shape, w_shape, *geo[:3], groups, version=version)
    workspace = cp.empty(need, F32) if need else None  # from CuPy's pool, freed back to it
    _cuda.conv2d_backward_weight(_c(gy), _c(x), *geo[:3], groups, gw, stream=_stream(), workspace=workspace,
                                 version=version)
    return gw


# ---- pooling --------------------------------------------------------------------------------
def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    geo = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
    if x.dtype != F32 or geo is None:
        return REF["max_pool2d"](x, kernel, stride, padding, dilation, ceil_mode)
    cp = _cupy()
    out = cp.empty(geo[4], F32)
    arg = cp.empty(geo[4], I64)
    _cuda.max_pool2d(_c(x), *geo[:4], bool(ceil_mode), out, arg, stream=_stream())
    return out, arg


def max_pool2d_backward(gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode):
    x_shape = tuple(int(n) for n in x_shape)
    geo = pool_geometry(x_shape, kernel, stride, padding, dilation, ceil_mode)
    if gy.dtype != F32 or arg.dtype != I64 or geo is None or gy.shape != geo[4] or arg.shape != geo[4]:
        return REF["max_pool2d_backward"](gy, arg, x_shape, kernel, stride, padding, dilation, ceil_mode)
    gx = _cupy().empty(x_shape, F32)
    _cuda.max_pool2d_backward(_c(gy), _c(arg), *geo[:4], bool(ceil_mode), gx, stream=_stream())
    return gx


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    geo = pool_geometry(x.shape, kernel, stride, padding, (1, 1), ceil_mode)
    if x.dtype != F32 or geo is None or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d"](x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    out = _cupy().empty(geo[4], F32)
    _cuda.avg_pool2d(_c(x), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override, out,
                     stream=_stream())
    return out


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x_shape = tuple(int(n) for n in x_shape)
    geo = pool_geometry(x_shape, kernel, stride, padding, (1, 1), ceil_mode)
    if gy.dtype != F32 or geo is None or gy.shape != geo[4] or not divisor_override_covered(divisor_override):
        return REF["avg_pool2d_backward"](gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override)
    gx = _cupy().empty(x_shape, F32)
    _cuda.avg_pool2d_backward(_c(gy), *geo[:3], bool(ceil_mode), bool(count_include_pad), divisor_override,
                              gx, stream=_stream())
    return gx

# ---- scaled dot-product attention (kernels/cuda/attention*.cu) ----------------------------
SDPA_MAX_HEAD_DIM = 128


def _ref(name):
    """The reference kernel of a fused op (materialised scores / log-probabilities)."""
    return REF[name]


def _sdpa_covered(q, k, v):
    """float32 q (..., L, E), k (..., S, E), v (..., S, Ev) with one leading shape, E, Ev <= 128."""
    return all(a.dtype == F32 and a.ndim >= 2 and a.shape[:-2] == q.shape[:-2] for a in (q, k, v)) \
        and k.shape[-1] == q.shape[-1] and v.shape[-2] == k.shape[-2] \
        and q.shape[-1] <= SDPA_MAX_HEAD_DIM and v.shape[-1] <= SDPA_MAX_HEAD_DIM


def _sdpa_mask(mask, lead, length, source):
    """The mask as the kernels take it: a C-contiguous (B or 1, L or 1, S or 1) bool or float32
    array over the flattened batch; None when it cannot be (the reference then runs). Only a
    broadcast over some but not all leading dims is materialised (over those dims only)."""
    cp = _cupy()
    if mask.dtype == np.bool_:
        pass
    elif mask.dtype.kind == "f":
        mask = mask.astype(F32, copy=False)
    else:
        return None
    if mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + mask.shape)
    m_lead, (m_len, m_src) = mask.shape[:-2], mask.shape[-2:]
    if m_len not in (1, length) or m_src not in (1, source) or len(m_lead) > len(lead):
        return None
    m_lead = (1,) * (len(lead) - len(m_lead)) + m_lead
    if any(m not in (1, n) for m, n in zip(m_lead, lead)):
        return None
    if all(m == 1 for m in m_lead):
        return _c(mask.reshape(1, m_len, m_src))
    batch = math.prod(lead)
    if m_lead != lead:
        mask = cp.broadcast_to(mask.reshape(m_lead + (m_len, m_src)), lead + (m_len, m_src))
    return _c(mask).reshape(batch, m_len, m_src)


def _sdpa_scale(q, scale):
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _sdpa_half(q, k, v):
    """float16 q, k, v of one leading shape that fit (..., L, E), (..., S, E), (..., S, Ev)."""
    return all(a.dtype == F16 and a.ndim >= 2 and a.shape[:-2] == q.shape[:-2] for a in (q, k, v)) \
        and k.shape[-1] == q.shape[-1] and v.shape[-2] == k.shape[-2]


def _aligned4(a):
    """a C-contiguous and 4-byte aligned (the 16-bit kernels move 32 bits at a time)."""
    a = _c(a)
    # CuPy's address; NumPy's where tests run these wrappers on the CPU emulation of the kernels
    address = a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data
    return a if address % 4 == 0 else a.copy()


def _f32(*arrays):
    return [a.astype(F32) for a in arrays]


def sdpa_forward(q, k, v, mask, is_causal, scale):
    """(out, lse): out (..., L, Ev) of q's dtype and lse (..., L) float32 (see reference_fused).
    float32 runs the tiled kernels; float16 the tensor-core kernel when E == Ev == 64 or 128,
    else the float32 kernels on float32 copies."""
    lead, (length, _), source = q.shape[:-2], q.shape[-2:], k.shape[-2]
    if _sdpa_half(q, k, v):
        if q.shape[-1] != v.shape[-1] or q.shape[-1] not in (64, 128):
            out, lse = sdpa_forward(*_f32(q, k, v), mask, is_causal, _sdpa_scale(q, scale))
            return out.astype(q.dtype), lse
        dtype, store = F16, _aligned4
    else:
        dtype, store = F32, _c
    native = dtype == F16 or _sdpa_covered(q, k, v)
    mask3 = None if mask is None or not native else _sdpa_mask(mask, lead, length, source)
    if not native or (mask is not None and mask3 is None):
        return _ref("sdpa_forward")(q, k, v, mask, is_causal, scale)
    cp = _cupy()
    batch, e, ev = math.prod(lead), q.shape[-1], v.shape[-1]
    q3, k3, v3 = store(q).reshape(batch, length, e), store(k).reshape(batch, source, e), \
        store(v).reshape(batch, source, ev)
    out = cp.empty((batch, length, ev), dtype)
    lse = cp.empty((batch, length), F32)
    _cuda.sdpa_forward(q3, k3, v3, mask3, bool(is_causal), _sdpa_scale(q, scale), out, lse, stream=_stream())
    return out.reshape(lead + (length, ev)), lse.reshape(lead + (length,))


def sdpa_backward(q, k, v, mask, is_causal, scale, out, lse, gout):
    """(gq, gk, gv) from sdpa_forward's out and lse and the gradient gout of out. float16 runs the
    tensor-core kernel when E == Ev == 64 or 128 (gradients in float16, P and dS rounded to
    float16 before their products, as the forward's P), else the float32 kernels on float32
    copies."""
    if _sdpa_half(q, k, v) and out.dtype == F16 and gout.dtype == F16:
        if q.shape[-1] != v.shape[-1] or q.shape[-1] not in (64, 128):
            grads = sdpa_backward(*_f32(q, k, v), mask, is_causal, _sdpa_scale(q, scale), *_f32(out), lse,
                                  *_f32(gout))
            return tuple(g.astype(F16) for g in grads)
        return _sdpa_backward_half(q, k, v, mask, is_causal, scale, out, lse, gout)
    lead, (length, _), source = q.shape[:-2], q.shape[-2:], k.shape[-2]
    rows = lead + (length,)
    covered = _sdpa_covered(q, k, v) and elementwise_covered(out, gout) and out.shape == rows + v.shape[-1:] \
        and lse.dtype == F32 and lse.shape == rows
    mask3 = None if mask is None or not covered else _sdpa_mask(mask, lead, length, source)
    if not covered or (mask is not None and mask3 is None):
        return _ref("sdpa_backward")(q, k, v, mask, is_causal, scale, out, lse, gout)
    cp = _cupy()
    batch, e, ev = math.prod(lead), q.shape[-1], v.shape[-1]
    q3, k3, v3 = _c(q).reshape(batch, length, e), _c(k).reshape(batch, source, e), _c(v).reshape(batch, source, ev)
    out3, gout3 = _c(out).reshape(batch, length, ev), _c(gout).reshape(batch, length, ev)
    gq, gk, gv = cp.empty_like(q3), cp.empty_like(k3), cp.empty_like(v3)
    delta = cp.empty((batch, length), F32)  # scratch from CuPy's pool
    _cuda.sdpa_backward(q3, k3, v3, mask3, bool(is_causal), _sdpa_scale(q, scale), out3,
                        _c(lse).reshape(batch, length), gout3, delta, gq, gk, gv, stream=_stream())
    return gq.reshape(q.shape), gk.reshape(k.shape), gv.reshape(v.shape)


def _sdpa_backward_half(q, k, v, mask, is_causal, scale, out, lse, gout):
    """The float16 tensor-core backward (E == Ev == 64 or 128), the reference where the mask
    cannot be flattened or out / lse do not match q."""
    lead, (length, e), source = q.shape[:-2], q.shape[-2:], k.shape[-2]
    rows = lead + (length,)
    fits = out.shape == gout.shape == rows + (e,) and lse.dtype == F32 and lse.shape == rows
    mask3 = None if mask is None or not fits else _sdpa_mask(mask, lead, length, source)
    if not fits or (mask is not None and mask3 is None):
        return _ref("sdpa_backward")(q, k, v, mask, is_causal, scale, out, lse, gout)
    cp = _cupy()
    batch = math.prod(lead)
    q3 = _aligned4(q).reshape(batch, length, e)
    k3, v3 = (_aligned4(a).reshape(batch, source, e) for a in (k, v))
    out3, gout3 = (_aligned4(a).reshape(batch, length, e) for a in (out, gout))
    gq, gk, gv = (cp.empty(a.shape, F16) for a in (q3, k3, v3))
    delta = cp.empty((batch, length), F32)  # scratch from CuPy's pool
    _cuda.sdpa_backward(q3, k3, v3, mask3, bool(is_causal), _sdpa_scale(q, scale), out3,
                        _c(lse).reshape(batch, length), gout3, delta, gq, gk, gv, stream=_stream())
    return gq.reshape(q.shape), gk.reshape(k.shape), gv.reshape(v.shape)


# ---- cross-entropy with class-index targets (kernels/cuda/cross_entropy.cu) ---------------
def _ce_covered(logits, target, weight, label_smoothing):
    return logits.dtype == F32 and logits.ndim == 2 and logits.shape[1] >= 1 and target.ndim == 1 \
        and target.shape[0] == logits.shape[0] and target.dtype.kind in "iu" \
        and (weight is None or (weight.dtype == F32 and weight.shape == logits.shape[1:])) \
        and 0 <= label_smoothing <= 1


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """(loss, lse), both (R,): loss already weighted, 0 on ignored rows (see reference_fused).
    A target out of range raises IndexError: checking costs one synchronisation (a 4-byte
    device-to-host copy that waits for the kernel) per call."""
    if not _ce_covered(logits, target, weight, label_smoothing):
        return _ref("cross_entropy_forward")(logits, target, weight, ignore_index, label_smoothing)
    cp = _cupy()
    rows = logits.shape[0]
    loss, lse = cp.empty(rows, F32), cp.empty(rows, F32)
    error = cp.zeros(1, np.int32)
    _cuda.cross_entropy_forward(_c(logits), _c(target.astype(np.int64, copy=False)),
                                None if weight is None else _c(weight), int(ignore_index), float(label_smoothing),
                                loss, lse, error, stream=_stream())
    if int(error.item()):
        raise IndexError(f"cross_entropy: target out of bounds for {logits.shape[1]} classes")
    return loss, lse


def cross_entropy_backward(logits, lse, target, weight, ignore_index, label_smoothing, grow):
    """glogits (R, C) = grow[r] * d loss[r] / d logits[r]; 0 on ignored rows. Targets are not
    checked again (the forward did): a row with an out-of-range one gets NaN, no exception."""
    rows = logits.shape[0]
    if not _ce_covered(logits, target, weight, label_smoothing) or not elementwise_covered(lse, grow) \
            or lse.shape != (rows,):
        return _ref("cross_entropy_backward")(logits, lse, target, weight, ignore_index, label_smoothing, grow)
    logits = _c(logits)
    glogits = _cupy().empty_like(logits)
    _cuda.cross_entropy_backward(logits, _c(lse), _c(target.astype(np.int64, copy=False)),
                                 None if weight is None else _c(weight), int(ignore_index), float(label_smoothing),
                                 _c(grow), glogits, stream=_stream())
    return glogits


if _cuda is not None:
    KERNELS.update(
        relu=relu, relu_backward=relu_backward, matmul=matmul, linear=linear, bias_act=bias_act,
        softmax=_softmax(_cuda.softmax, REF["softmax"]),
        log_softmax=_softmax(_cuda.log_softmax, REF["log_softmax"]),
        softmax_backward=_softmax_backward(_cuda.softmax_backward, REF["softmax_backward"]),
        log_softmax_backward=_softmax_backward(_cuda.log_softmax_backward, REF["log_softmax_backward"]),
        sigmoid=_unary(_cuda.sigmoid, REF["sigmoid"]),
        sigmoid_backward=_binary(_cuda.sigmoid_backward, REF["sigmoid_backward"]),
        tanh=_unary(_cuda.tanh, REF["tanh"]),
        tanh_backward=_binary(_cuda.tanh_backward, REF["tanh_backward"]),
        silu=_unary(_cuda.silu, REF["silu"]),
        silu_backward=_binary(_cuda.silu_backward, REF["silu_backward"]),
        gelu=gelu, gelu_backward=gelu_backward,
        leaky_relu=leaky_relu, leaky_relu_backward=leaky_relu_backward,
        layer_norm=layer_norm, layer_norm_backward=layer_norm_backward,
        conv2d=conv2d, conv2d_bias_act=conv2d_bias_act, conv2d_backward_input=conv2d_backward_input,
        conv2d_backward_weight=conv2d_backward_weight,
        max_pool2d=max_pool2d, max_pool2d_backward=max_pool2d_backward,
        avg_pool2d=avg_pool2d, avg_pool2d_backward=avg_pool2d_backward,

        sdpa_forward=sdpa_forward, sdpa_backward=sdpa_backward,
        cross_entropy_forward=cross_entropy_forward, cross_entropy_backward=cross_entropy_backward,
    )


def info():
    if _cuda is None:
        return {"built": False}
    return {"built": True, "archs": list(_cuda.compiled_archs()), "available": bool(_cuda.is_available())}
