"""ctypes calls into the emulated kernels (emulate.build): NumPy arrays in, NumPy arrays out."""
import ctypes

import numpy as np

c_i64, c_int, c_float, c_ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p


class TgSdpa(ctypes.Structure):  # tg_cuda.h
    _fields_ = [("batch", c_i64), ("q_len", c_i64), ("kv_len", c_i64), ("head_dim", c_i64), ("v_dim", c_i64),
                ("dtype", c_int), ("q", c_ptr), ("k", c_ptr), ("v", c_ptr), ("mask", c_ptr), ("mask_kind", c_int),
                ("mask_stride_b", c_i64), ("mask_stride_l", c_i64), ("mask_stride_s", c_i64), ("is_causal", c_int),
                ("scale", c_float), ("out", c_ptr), ("lse", c_ptr), ("gout", c_ptr), ("delta", c_ptr), ("gq", c_ptr),
                ("gk", c_ptr), ("gv", c_ptr)]


def _ptr(a):
    return None if a is None else a.ctypes.data


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _sdpa_args(q, k, v, mask, causal, scale, dtype=0):
    """The TgSdpa of C-contiguous (B, L, E), (B, S, E), (B, S, Ev) arrays (float32, or the raw
    16-bit values of float16 / bfloat16: dtype 1 / 2); mask None or 3-D with dims 1 or full
    (bool or float32)."""
    B, L, E = q.shape
    S, Ev = v.shape[1], v.shape[2]
    a = TgSdpa(batch=B, q_len=L, kv_len=S, head_dim=E, v_dim=Ev, dtype=dtype, q=_ptr(q), k=_ptr(k), v=_ptr(v),
               is_causal=int(causal), scale=scale)
    if mask is not None:
        mb, ml, ms = mask.shape
        a.mask, a.mask_kind = _ptr(mask), 1 if mask.dtype == np.bool_ else 2
        a.mask_stride_b, a.mask_stride_l, a.mask_stride_s = (0 if mb == 1 else ml * ms), (0 if ml == 1 else ms), \
            (0 if ms == 1 else 1)
    return a


def sdpa_forward_into(lib, q, k, v, mask, causal, scale, out, lse, version, dtype=0):
    a = _sdpa_args(q, k, v, mask, causal, scale, dtype)
    a.out, a.lse = _ptr(out), _ptr(lse)
    assert lib.tg_cuda_sdpa_forward(ctypes.byref(a), version, None) == 0


def to_bfloat16_bits(x):
    """float32 values rounded to nearest even bfloat16, as uint16 bits."""
    w = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def sdpa_forward_16(lib, q, k, v, mask, causal, scale, bf16, version=4):
    """The 16-bit forward (version 4, the default, or 3) on float16 (bf16 False: q, k, v float16
    arrays) or bfloat16 (uint16 bits) inputs: (out as float32, lse)."""
    q, k, v = (np.ascontiguousarray(a).view(np.uint16) for a in (q, k, v))
    if mask is not None:
        mask = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask.astype(np.float32))
    B, L, _ = q.shape
    out = np.full((B, L, v.shape[2]), 0x7E00, np.uint16)  # NaN in both types: anything not written shows
    lse = np.full((B, L), 7.0, np.float32)
    sdpa_forward_into(lib, q, k, v, mask, causal, scale, out, lse, version, 2 if bf16 else 1)
    return (from_bfloat16_bits(out) if bf16 else out.view(np.float16).astype(np.float32)), lse


def sdpa_backward_into(lib, q, k, v, mask, causal, scale, out, lse, gout, delta, gq, gk, gv, version, dtype=0):
    a = _sdpa_args(q, k, v, mask, causal, scale, dtype)
    a.out, a.lse, a.gout, a.delta = _ptr(out), _ptr(lse), _ptr(gout), _ptr(delta)
    a.gq, a.gk, a.gv = _ptr(gq), _ptr(gk), _ptr(gv)
    assert lib.tg_cuda_sdpa_backward(ctypes.byref(a), version, None) == 0


def sdpa_16(lib, q, k, v, mask, causal, scale, gout, bf16, version=4):
    """The 16-bit forward (version 4, the default, or 3) and the backward on float16 (bf16 False: float16 arrays) or bfloat16 (uint16
    bits) inputs: (out, lse, gq, gk, gv), the 16-bit results as float32. 16-bit outputs start as
    NaN and lse / delta as 7.0, so anything not written shows."""
    q, k, v, gout = (np.ascontiguousarray(a).view(np.uint16) for a in (q, k, v, gout))
    if mask is not None:
        mask = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask.astype(np.float32))
    B, L, _ = q.shape
    dtype = 2 if bf16 else 1
    out = np.full((B, L, v.shape[2]), 0x7E00, np.uint16)
    lse = np.full((B, L), 7.0, np.float32)
    sdpa_forward_into(lib, q, k, v, mask, causal, scale, out, lse, version, dtype)
    delta = np.full((B, L), 7.0, np.float32)
    gq, gk, gv = (np.full(a.shape, 0x7E00, np.uint16) for a in (q, k, v))
    sdpa_backward_into(lib, q, k, v, mask, causal, scale, out, lse, gout, delta, gq, gk, gv, version, dtype)
    as32 = from_bfloat16_bits if bf16 else (lambda a: a.view(np.float16).astype(np.float32))
    return as32(out), lse, as32(gq), as32(gk), as32(gv)


def sdpa(lib, q, k, v, mask, causal, scale, gout, version):
    """(out, lse, gq, gk, gv) from the forward and backward kernels; outputs start as 7.0, so
    anything not written shows."""
    q, k, v, gout = _f32(q), _f32(k), _f32(v), _f32(gout)
    if mask is not None:
        mask = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask.astype(np.float32))
    B, L, _ = q.shape
    out = np.full((B, L, v.shape[2]), 7.0, np.float32)
    lse = np.full((B, L), 7.0, np.float32)
    sdpa_forward_into(lib, q, k, v, mask, causal, scale, out, lse, version)
    delta = np.full((B, L), 7.0, np.float32)
    gq, gk, gv = np.full(q.shape, 7.0, np.float32), np.full(k.shape, 7.0, np.float32), np.full(v.shape, 7.0, np.float32)
    sdpa_backward_into(lib, q, k, v, mask, causal, scale, out, lse, gout, delta, gq, gk, gv, version)
    return out, lse, gq, gk, gv


def cross_entropy(lib, logits, target, weight, ignore_index, smoothing, grow):
    """(loss, lse, error, glogits) from tg_cuda_cross_entropy / _backward."""
    logits, grow = _f32(logits), _f32(grow)
    target = np.ascontiguousarray(target, dtype=np.int64)
    weight = None if weight is None else _f32(weight)
    rows, classes = logits.shape
    loss, lse = np.full(rows, 7.0, np.float32), np.full(rows, 7.0, np.float32)
    error = np.zeros(1, np.int32)
    assert lib.tg_cuda_cross_entropy(_ptr(logits), _ptr(target), _ptr(weight), _ptr(loss), _ptr(lse), _ptr(error),
                                     c_i64(rows), c_i64(classes), c_i64(ignore_index), c_float(smoothing), None) == 0
    glogits = np.full(logits.shape, 7.0, np.float32)
    assert lib.tg_cuda_cross_entropy_backward(_ptr(logits), _ptr(lse), _ptr(target), _ptr(weight), _ptr(grow),
                                              _ptr(glogits), c_i64(rows), c_i64(classes), c_i64(ignore_index),
                                              c_float(smoothing), None) == 0
    return loss, lse, int(error[0]), glogits


def load(path):
    lib = ctypes.CDLL(str(path))
    sdpa_args = [ctypes.POINTER(TgSdpa), c_int, c_ptr]
    signatures = {
        "tg_cuda_sdpa_forward": sdpa_args,
        "tg_cuda_sdpa_backward": sdpa_args,
        "tg_cuda_cross_entropy": [c_ptr] * 6 + [c_i64, c_i64, c_i64, c_float, c_ptr],
        "tg_cuda_cross_entropy_backward": [c_ptr] * 6 + [c_i64, c_i64, c_i64, c_float, c_ptr],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = c_int, argtypes
    return lib


class FakeCudaModule:
    """Stands in for tilegrad._cuda with the emulated kernels on NumPy arrays (the bindings' names
    and argument order; no validation), so the CUDA backend's wrappers can run on the CPU."""

    def __init__(self, lib):
        self.lib = lib

    @staticmethod
    def _check(*arrays):
        """What the bindings would insist on: C-contiguous arrays of the kernels' dtypes."""
        kinds = (np.float32, np.float16, np.uint16, np.int64, np.int32, np.bool_)
        for a in arrays:
            assert a is None or (a.flags.c_contiguous and a.dtype in kinds), a

    def sdpa_forward(self, q, k, v, mask, is_causal, scale, out, lse, stream=0, version=0, dtype=None):
        self._check(q, k, v, mask, out, lse)
        kind = 2 if dtype == "bfloat16" else 1 if q.dtype == np.float16 else 0
        assert all(a.dtype == q.dtype for a in (k, v, out)) and lse.dtype == np.float32
        if kind:
            assert all(a.ctypes.data % 4 == 0 for a in (q, k, v, out))
            q, k, v, out = (a.view(np.uint16) for a in (q, k, v, out))
        sdpa_forward_into(self.lib, q, k, v, mask, is_causal, scale, out, lse, version or (4 if kind else 2), kind)

    def sdpa_backward(self, q, k, v, mask, is_causal, scale, out, lse, gout, delta, gq, gk, gv, stream=0, version=0,
                      dtype=None):
        self._check(q, k, v, mask, out, lse, gout, delta, gq, gk, gv)
        kind = 2 if dtype == "bfloat16" else 1 if q.dtype == np.float16 else 0
        assert all(a.dtype == q.dtype for a in (k, v, out, gout, gq, gk, gv))
        assert lse.dtype == delta.dtype == np.float32
        if kind:
            assert all(a.ctypes.data % 4 == 0 for a in (q, k, v, out, gout, gq, gk, gv))
            q, k, v, out, gout, gq, gk, gv = (a.view(np.uint16) for a in (q, k, v, out, gout, gq, gk, gv))
        sdpa_backward_into(self.lib, q, k, v, mask, is_causal, scale, out, lse, gout, delta, gq, gk, gv,
                           version or (4 if kind else 2), kind)

    def cross_entropy_forward(self, logits, target, weight, ignore_index, smoothing, loss, lse, error, stream=0):
        self._check(logits, target, weight, loss, lse, error)
        assert target.dtype == np.int64 and error.dtype == np.int32
        assert self.lib.tg_cuda_cross_entropy(_ptr(logits), _ptr(target), _ptr(weight), _ptr(loss), _ptr(lse),
                                              _ptr(error), *logits.shape, ignore_index, smoothing, None) == 0

    def cross_entropy_backward(self, logits, lse, target, weight, ignore_index, smoothing, grow, glogits, stream=0):
        self._check(logits, lse, target, weight, grow, glogits)
        assert target.dtype == np.int64
        assert self.lib.tg_cuda_cross_entropy_backward(_ptr(logits), _ptr(lse), _ptr(target), _ptr(weight),
                                                       _ptr(grow), _ptr(glogits), *logits.shape, ignore_index,
                                                       smoothing, None) == 0
