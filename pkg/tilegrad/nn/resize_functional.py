"""``pad`` and ``interpolate``: both are one ``DimMap`` op per affected dim (a sparse linear map
along that dim: an index per output position, with weights for linear modes), so every mode
shares one forward and one scatter-add backward. The index maps are built here with NumPy."""
import math
import numbers

import numpy as np

from ..ops import select as SE
from ..tensor import Tensor

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_positions(mode, n, left, right, dim):
    """(source index, valid mask or None) of each output position along a dim of size n."""
    p = np.arange(-left, n + right)
    if mode == "constant":
        valid = (p >= 0) & (p < n)
        return np.clip(p, 0, max(n - 1, 0)), (None if valid.all() else valid)
    if mode == "reflect":
        if max(left, right) >= n:
            raise RuntimeError(f"pad(): padding size should be less than the corresponding input dimension, but got "
                               f"padding ({left}, {right}) at dimension {dim} of size {n}")
        period = max(2 * (n - 1), 1)
        q = np.abs(p) % period
        return np.where(q >= n, period - q, q), None
    if mode == "replicate":
        if n == 0:
            raise RuntimeError(f"pad(): cannot replicate-pad dimension {dim} of size 0")
        return np.clip(p, 0, n - 1), None
    if max(left, right) > n:
        raise RuntimeError(f"pad(): padding ({left}, {right}) at dimension {dim} of size {n} wraps around more than once")
    return p % n, None


def pad(input, pad, mode="constant", value=None):  # noqa: A002 - PyTorch's argument names
    """Pad (or crop, with negative amounts) the last ``len(pad) // 2`` dims; ``pad`` lists
    (left, right) of the last dim first, then of the one before, as in PyTorch."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): input must be a Tensor, not {type(input).__name__}")
    pad = tuple(pad)
    if len(pad) % 2:
        raise RuntimeError("pad(): padding length must be divisible by 2")
    if any(not isinstance(n, numbers.Integral) for n in pad):
        raise TypeError(f"pad(): padding amounts must be ints, got {pad}")
    k = len(pad) // 2
    if k > input.ndim:
        raise RuntimeError(f"pad(): padding length {len(pad)} is more than two times the input dimension {input.ndim}")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad(): unrecognised padding mode {mode!r}; expected one of {_PAD_MODES}")
    if mode != "constant":
        if value not in (None, 0):
            raise ValueError(f"pad(): padding mode {mode!r} does not take a value")
        if not 1 <= k <= 3 or input.ndim not in (k + 1, k + 2):
            raise NotImplementedError(f"pad(): {mode} padding of {k} dims needs a {k + 1}D or {k + 2}D input, "
                                      f"got {input.ndim}D")
    fill = 0 if value is None else value
    out_shape = list(input.shape)
    for j in range(k):
        d = input.ndim - 1 - j
        out_shape[d] += pad[2 * j] + pad[2 * j + 1]
        if out_shape[d] < 0:
            raise RuntimeError(f"pad(): padding {pad[2 * j:2 * j + 2]} makes dimension {d} of size {input.shape[d]} negative")
    if mode == "constant" and input.numel() == 0:
        from .. import creation
        return creation.full(tuple(out_shape), fill, dtype=input.dtype, device=input.device)
    out = input
    for j in range(k):
        d = input.ndim - 1 - j
        left, right = pad[2 * j], pad[2 * j + 1]
        if left == 0 and right == 0:
            continue
        index, valid = _pad_positions(mode, input.shape[d], left, right, d)
        out = SE.DimMap.apply(out, d, [(index, None)], valid, fill)
    return out


# ---- interpolate ---------------------------------------------------------------------------
_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _sizes(input, size, scale_factor, n):
    """(output sizes, scale factors or None per dim) of the ``n`` spatial dims."""
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate(): exactly one of size or scale_factor should be defined")
    if size is not None:
        size = (size,) * n if isinstance(size, numbers.Integral) else tuple(size)
        if len(size) != n or any(not isinstance(s, numbers.Integral) or s <= 0 for s in size):
            raise ValueError(f"interpolate(): size must be {n} positive ints for a {n + 2}D input, got {size}")
        return size, (None,) * n
    scales = (scale_factor,) * n if isinstance(scale_factor, numbers.Real) else tuple(scale_factor)
    if len(scales) != n or any(s <= 0 for s in scales):
        raise ValueError(f"interpolate(): scale_factor must be {n} positive numbers for a {n + 2}D input, got {scale_factor}")
    sizes = tuple(math.floor(i * s) for i, s in zip(input.shape[2:], scales))
    if any(s <= 0 for s in sizes):
        raise ValueError(f"interpolate(): scale_factor {scale_factor} gives an empty output for input {input.shape}")
    return sizes, scales


def _nearest_index(n_in, n_out, scale, exact):
    # PyTorch computes the source index in float32: floor(dst * scale) (+0.5 for nearest-exact).
    ratio = np.float32(1.0 / scale if scale else n_in / n_out)
    dst = np.arange(n_out, dtype=np.float32) + np.float32(0.5 if exact else 0.0)
    return np.minimum(np.floor(dst * ratio).astype(np.int64), n_in - 1)


def _linear_taps(n_in, n_out, scale, align_corners):
    """Two taps (index, weight) per output position: PyTorch's source-coordinate rule."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        ratio = 1.0 / scale if scale else n_in / n_out
        src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = src - i0
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return [(i0, 1.0 - w1), (i1, w1)]


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of an (N, C, ...) input: modes nearest / nearest-exact (1-3
    spatial dims), linear (3D), bilinear (4D) and trilinear (5D), with ``align_corners``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate(): input must be a Tensor, not {type(input).__name__}")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    if mode not in ("nearest", "nearest-exact") and mode not in _LINEAR_MODES:
        raise NotImplementedError(f"interpolate(): mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  "bilinear, trilinear are)")
    if align_corners is not None and mode not in _LINEAR_MODES:
        raise ValueError("interpolate(): align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | trilinear")
    n = input.ndim - 2
    if not 1 <= n <= 3:
        raise ValueError(f"interpolate(): expected a 3D, 4D or 5D (N, C, ...) input, got shape {input.shape}")
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != n:
        raise NotImplementedError(f"interpolate(): got {input.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR_MODES[mode] + 2}D input")
    if mode in _LINEAR_MODES and not input.is_floating_point():
        raise RuntimeError(f"interpolate(): {mode} mode needs a floating point input, got {input.dtype}")
    sizes, scales = _sizes(input, size, scale_factor, n)
    if recompute_scale_factor:
        scales = (None,) * n
    out = input
    for j, (n_out, scale) in enumerate(zip(sizes, scales)):
        d = 2 + j
        n_in = input.shape[d]
        if mode in _LINEAR_MODES:
            taps = _linear_taps(n_in, n_out, scale, bool(align_corners))
        else:
            taps = [(_nearest_index(n_in, n_out, scale, mode == "nearest-exact"), None)]
        out = SE.DimMap.apply(out, d, taps, None, 0)
    return out
