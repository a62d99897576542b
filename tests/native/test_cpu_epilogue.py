"""tilegrad._cpu.bias_act, the Linear / Conv2d epilogue y = act(y + bias) in place, against
NumPy on ragged shapes, every activation it offers, and misuse."""
import math

import numpy as np
import pytest

_cpu = pytest.importorskip("tilegrad._cpu", reason="tilegrad._cpu was not built")


def _erf(v):
    return np.vectorize(math.erf)(v)


ACTS = {
    "none": lambda z, p: z,
    "relu": lambda z, p: np.maximum(z, 0),
    "sigmoid": lambda z, p: 1 / (1 + np.exp(-z)),
    "tanh": lambda z, p: np.tanh(z),
    "gelu": lambda z, p: 0.5 * z * (1 + _erf(z / math.sqrt(2))),
    "gelu_tanh": lambda z, p: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))),
    "silu": lambda z, p: z / (1 + np.exp(-z)),
    "leaky_relu": lambda z, p: np.where(z > 0, z, p * z),
}


@pytest.mark.parametrize("activation", sorted(ACTS))
@pytest.mark.parametrize("shape,dim", [((7, 33), -1), ((1, 1), -1), ((3, 5, 129), -1), ((2, 3, 7, 6), 1),
                                       ((4, 17, 1, 1), 1), ((300, 257), 1 - 2), ((2, 64, 33, 35), 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_act_matches_numpy(rng, activation, shape, dim, with_bias):
    y = rng.normal(*shape) * 3
    bias = rng.normal(shape[dim]) if with_bias else None
    bshape = [1] * len(shape)
    bshape[dim] = shape[dim]
    z = y.astype(np.float64) + (bias.reshape(bshape) if with_bias else 0)
    want = ACTS[activation](z, 0.1)
    _cpu.bias_act(y, bias, dim, activation, 0.1)
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=2e-6, err_msg=f"{activation} {shape} {rng}")


def test_bias_act_large_parallel_and_nan(rng):
    y = rng.normal(64, 128, 31, 33)  # above the OpenMP threshold
    y[0, 0, 0, 0] = np.nan
    bias = rng.normal(128)
    want = np.maximum(y.astype(np.float64) + bias.reshape(1, -1, 1, 1), 0)
    want[0, 0, 0, 0] = np.nan
    _cpu.bias_act(y, bias, 1, "relu")
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6, err_msg=str(rng))  # NaN stays NaN


def f32(*shape):
    return np.ones(shape, np.float32)


def test_bias_act_rejects_misuse():
    with pytest.raises(ValueError, match=r"bias_act.*bias.*shape"):
        _cpu.bias_act(f32(3, 4), f32(3), -1, "relu")
    with pytest.raises(ValueError, match=r"bias_act.*dim 2 is out of range"):
        _cpu.bias_act(f32(3, 4), None, 2, "relu")
    with pytest.raises(ValueError, match=r"bias_act.*activation must be one of"):
        _cpu.bias_act(f32(3, 4), None, 1, "swish")
    with pytest.raises(TypeError, match=r"bias_act.*activation.*str"):
        _cpu.bias_act(f32(3, 4), None, 1, None)
    with pytest.raises(TypeError, match=r"bias_act.*float32"):
        _cpu.bias_act(np.ones((3, 4)), None, 1, "relu")
    ro = f32(3, 4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"bias_act.*writeable"):
        _cpu.bias_act(ro, None, 1, "relu")
    y = f32(4, 4)
    with pytest.raises(ValueError, match=r"bias_act.*share memory"):
        _cpu.bias_act(y, y[0], 1, "relu")
    with pytest.raises(ValueError, match=r"bias_act.*C-contiguous"):
        _cpu.bias_act(f32(4, 6)[:, ::2], None, 1, "relu")
