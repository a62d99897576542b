"""nn.init: bounds and moments on large tensors, gains, fans, and the layers' default init."""
import math

import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
from tilegrad.nn import init


def values(t):
    return t.detach().numpy().astype(np.float64)


def test_uniform_and_normal_statistics(seed):
    tg.manual_seed(seed)
    u = values(init.uniform_(tg.empty(200, 500), -2.0, 3.0))
    assert u.min() >= -2.0 and u.max() < 3.0
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - 5 / math.sqrt(12)) < 0.02
    n = values(init.normal_(tg.empty(200, 500), 1.5, 0.5))
    assert abs(n.mean() - 1.5) < 0.01 and abs(n.std() - 0.5) < 0.01
    t = values(init.trunc_normal_(tg.empty(100, 100), 0.0, 1.0, -0.5, 0.5))
    assert t.min() >= -0.5 and t.max() <= 0.5


def test_constant_zeros_ones_eye():
    assert (values(init.constant_(tg.empty(3, 4), 2.5)) == 2.5).all()
    assert (values(init.zeros_(tg.empty(3))) == 0).all()
    assert (values(init.ones_(tg.empty(3))) == 1).all()
    np.testing.assert_array_equal(values(init.eye_(tg.empty(2, 3))), np.eye(2, 3))


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(tg.empty(7, 5)) == (5, 7)
    assert init._calculate_fan_in_and_fan_out(tg.empty(8, 3, 3, 2)) == (18, 48)
    with pytest.raises(ValueError):
        init._calculate_fan_in_and_fan_out(tg.empty(5))


def test_xavier(seed):
    tg.manual_seed(seed)
    fan_in, fan_out = 300, 500
    u = values(init.xavier_uniform_(tg.empty(fan_out, fan_in), gain=2.0))
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    assert abs(u.std() - bound / math.sqrt(3)) < 0.01 * bound
    n = values(init.xavier_normal_(tg.empty(fan_out, fan_in)))
    assert abs(n.std() - math.sqrt(2 / (fan_in + fan_out))) < 0.01 * math.sqrt(2 / (fan_in + fan_out)) * 3


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming(seed, mode):
    tg.manual_seed(seed)
    w = tg.empty(400, 100, 2, 2)  # fan_in 400, fan_out 1600
    fan = 400 if mode == "fan_in" else 1600
    std = math.sqrt(2) / math.sqrt(fan)
    n = values(init.kaiming_normal_(w, mode=mode, nonlinearity="relu"))
    assert abs(n.std() - std) < 0.02 * std and abs(n.mean()) < 0.02 * std
    u = values(init.kaiming_uniform_(w, a=0.2, mode=mode))
    bound = math.sqrt(3) * math.sqrt(2 / (1 + 0.04)) / math.sqrt(fan)
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    with pytest.raises(ValueError):
        init.kaiming_uniform_(w, mode="fan_avg")


def test_init_is_in_place_without_graph():
    p = nn.Parameter(tg.zeros(3, 4))
    data = p._data
    out = init.normal_(p)
    assert out is p and p._data is data and p.is_leaf and p.requires_grad and p.grad_fn is None
    orth = values(init.orthogonal_(tg.empty(4, 6)))
    np.testing.assert_allclose(orth @ orth.T, np.eye(4), atol=1e-5)


def test_manual_seed_reproduces_models():
    def build():
        tg.manual_seed(123)
        return nn.Sequential(nn.Linear(4, 5), nn.Conv2d(2, 3, 3), nn.LSTM(3, 4), nn.Embedding(5, 2))
    a, b = build().state_dict(), build().state_dict()
    for k in a:
        np.testing.assert_array_equal(values(a[k]), values(b[k]), err_msg=k)
    tg.manual_seed(124)
    c = nn.Linear(4, 5)
    assert not np.array_equal(values(c.weight), values(a["0.weight"]))


def test_default_layer_init(seed):
    tg.manual_seed(seed)
    lin = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)  # kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in))
    w, b = values(lin.weight), values(lin.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert np.abs(b).max() <= bound
    conv = nn.Conv2d(6, 50, (3, 5), groups=2)
    fan_in = 3 * 15
    assert np.abs(values(conv.weight)).max() <= 1 / math.sqrt(fan_in) and np.abs(values(conv.bias)).max() <= 1 / math.sqrt(fan_in)
    convt = nn.ConvTranspose2d(40, 6, 3, groups=2)  # weight (40, 3, 3, 3): fan_in = 3 * 9
    assert convt.weight.shape == (40, 3, 3, 3)
    assert np.abs(values(convt.weight)).max() <= 1 / math.sqrt(27) and np.abs(values(convt.weight)).max() > 0.9 / math.sqrt(27)
    lstm = nn.LSTM(10, 16)
    assert all(np.abs(values(p)).max() <= 0.25 for p in lstm.parameters())
    emb = values(nn.Embedding(1000, 50, padding_idx=3).weight)
    assert (emb[3] == 0).all() and abs(emb.std() - 1) < 0.02
    bn = nn.BatchNorm2d(4)
    assert (values(bn.weight) == 1).all() and (values(bn.bias) == 0).all() and (values(bn.running_var) == 1).all()
    mha = nn.MultiheadAttention(8, 2)
    assert (values(mha.in_proj_bias) == 0).all() and (values(mha.out_proj.bias) == 0).all()
    assert np.abs(values(mha.in_proj_weight)).max() <= math.sqrt(6 / (8 + 24))


def test_layers_take_dtype():
    lin = nn.Linear(3, 2, dtype=tg.float64)
    assert lin.weight.dtype == tg.float64 and lin.bias.dtype == tg.float64
