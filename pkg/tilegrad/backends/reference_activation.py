"""Reference kernels of the activations beyond relu/gelu/silu: softplus, elu (and selu through
it), mish, hardtanh (and relu6), hardswish, hardsigmoid and logsigmoid. Written against ``xp``
like reference.py, so they run on CuPy arrays too; the native backends have no kernels of their
own for these and inherit these ones.

Constants are cast to the array's dtype first so a float32 input stays float32.
"""
from .reference import xp_of


def _c(x, value):
    return x.dtype.type(value)


def _sigmoid(xp, z):
    # exp of a non-positive number only, so neither branch overflows.
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x, beta, threshold):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    xp = xp_of(x)
    z = x * _c(x, beta)
    return xp.where(z > _c(x, threshold), x, xp.logaddexp(_c(x, 0), z) / _c(x, beta))


def softplus_backward(x, gy, beta, threshold):
    xp = xp_of(x)
    z = x * _c(x, beta)
    return xp.where(z > _c(x, threshold), gy, gy * _sigmoid(xp, z))


def elu(x, alpha, scale):
    """scale * (x if x > 0 else alpha * (exp(x) - 1)); SELU is elu with its fixed alpha and scale."""
    xp = xp_of(x)
    negative = _c(x, alpha) * xp.expm1(xp.minimum(x, _c(x, 0)))
    return _c(x, scale) * xp.where(x > 0, x, negative)


def elu_backward(x, gy, alpha, scale):
    xp = xp_of(x)
    slope = xp.where(x > 0, _c(x, 1), _c(x, alpha) * xp.exp(xp.minimum(x, _c(x, 0))))
    return gy * (_c(x, scale) * slope)


def mish(x):
    """x * tanh(softplus(x))."""
    xp = xp_of(x)
    return x * xp.tanh(xp.logaddexp(_c(x, 0), x))


def mish_backward(x, gy):
    xp = xp_of(x)
    t = xp.tanh(xp.logaddexp(_c(x, 0), x))
    return gy * (t + x * _sigmoid(xp, x) * (1 - t * t))


def hardtanh(x, min_val, max_val):
    return xp_of(x).clip(x, _c(x, min_val), _c(x, max_val))


def hardtanh_backward(x, gy, min_val, max_val):
    # PyTorch passes no gradient at the bounds themselves (clamp passes it there).
    inside = (x > _c(x, min_val)) & (x < _c(x, max_val))
    return xp_of(x).where(inside, gy, _c(gy, 0))


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return x * hardsigmoid(x)


def hardswish_backward(x, gy):
    xp = xp_of(x)
    middle = gy * (x / _c(x, 3) + _c(x, 0.5))
    return xp.where(x < _c(x, -3), _c(gy, 0), xp.where(x <= _c(x, 3), middle, gy))


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return xp_of(x).clip(x + _c(x, 3), _c(x, 0), _c(x, 6)) / _c(x, 6)


def hardsigmoid_backward(x, gy):
    inside = (x > _c(x, -3)) & (x < _c(x, 3))
    return xp_of(x).where(inside, gy / _c(gy, 6), _c(gy, 0))


def logsigmoid(x):
    """-softplus(-x) = min(x, 0) - log1p(exp(-|x|)), with no overflow either side."""
    xp = xp_of(x)
    return xp.minimum(x, _c(x, 0)) - xp.log1p(xp.exp(-xp.abs(x)))


def logsigmoid_backward(x, gy):
    return gy * _sigmoid(xp_of(x), -x)


KERNELS = {
    "softplus": softplus, "softplus_backward": softplus_backward, "elu": elu, "elu_backward": elu_backward,
    "mish": mish, "mish_backward": mish_backward, "hardtanh": hardtanh, "hardtanh_backward": hardtanh_backward,
    "hardswish": hardswish, "hardswish_backward": hardswish_backward,
    "hardsigmoid": hardsigmoid, "hardsigmoid_backward": hardsigmoid_backward,
    "logsigmoid": logsigmoid, "logsigmoid_backward": logsigmoid_backward,
}
