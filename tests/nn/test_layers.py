"""Layers against their defining formulas in NumPy, plus gradcheck of small layers."""
import math

import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
from tilegrad.autograd import gradcheck




def np_of(t):
    return t.detach().numpy()


def double(module):
    return module.double()


# ---- linear, flatten, identity ------------------------------------------------------------
def test_linear_matches_formula(seed):
    rng = np.random.default_rng(seed)
    lin = nn.Linear(5, 3)
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    expected = x @ np_of(lin.weight).T + np_of(lin.bias)
    np.testing.assert_allclose(np_of(lin(tg.tensor(x))), expected, rtol=1e-5, atol=1e-6)
    no_bias = nn.Linear(5, 3, bias=False)
    assert no_bias.bias is None and len(list(no_bias.parameters())) == 1
    np.testing.assert_allclose(np_of(no_bias(tg.tensor(x))), x @ np_of(no_bias.weight).T, rtol=1e-5, atol=1e-6)


def test_linear_shape_error_names_layer_and_shape():
    with pytest.raises(ValueError, match=r"Linear\(in_features=4\): expected input with last dim 4, got shape \(3, 5\)"):
        nn.Linear(4, 2)(tg.randn(3, 5))


def test_linear_gradcheck():
    lin = double(nn.Linear(3, 2))
    x = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: lin(x), (x, lin.weight, lin.bias))


def test_flatten_unflatten_identity():
    x = tg.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    ident = nn.Identity(54, unused="arg")
    assert ident(x) is x


# ---- activations --------------------------------------------------------------------------
def _erf(a):
    return np.vectorize(math.erf)(a)


ACTIVATIONS = [
    (lambda: nn.ReLU(), lambda x: np.maximum(x, 0)),
    (lambda: nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda: nn.GELU(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    (lambda: nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    (lambda: nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (lambda: nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (lambda: nn.Tanh(), np.tanh),
    (lambda: nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (lambda: nn.LogSoftmax(dim=-1), lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
]


@pytest.mark.parametrize("make, formula", ACTIVATIONS, ids=[str(i) for i in range(len(ACTIVATIONS))])
def test_activation_matches_formula(seed, make, formula):
    x = np.random.default_rng(seed).standard_normal((3, 4, 5))
    module = make()
    np.testing.assert_allclose(np_of(module(tg.tensor(x))), formula(x), rtol=1e-7, atol=1e-9)
    xt = tg.tensor(x[:2, :2, :3], requires_grad=True).contiguous().detach().requires_grad_()
    assert gradcheck(lambda t: module(t), (xt,))


def test_activation_reprs():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    with pytest.raises(ValueError):
        nn.GELU("fast")


# ---- convolutions and pooling -------------------------------------------------------------
def conv2d_ref(x, w, b, stride, padding, dilation, groups):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def conv_transpose2d_ref(x, w, b, stride, padding, output_padding, groups, dilation):
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = stride, padding, output_padding, dilation
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    full = np.zeros((n, og * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oh, (wd - 1) * sw + dw * (kw - 1) + 1 + ow))
    for g in range(groups):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i * dh:i * dh + sh * (h - 1) + 1:sh, j * dw:j * dw + sw * (wd - 1) + 1:sw] += \
                    np.einsum("nchw,co->nohw", xs, ws[:, :, i, j])
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1
    return full[:, :, ph:ph + ho, pw:pw + wo] + (b.reshape(1, -1, 1, 1) if b is not None else 0)


CONV_CASES = [dict(kernel_size=3), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2)),
              dict(kernel_size=3, padding=2, dilation=2, groups=2), dict(kernel_size=1, bias=False, groups=4)]


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_matches_formula(seed, kw):
    conv = double(nn.Conv2d(4, 8, **kw))
    x = np.random.default_rng(seed).standard_normal((2, 4, 7, 6))
    ref = conv2d_ref(x, np_of(conv.weight), None if conv.bias is None else np_of(conv.bias),
                     conv.stride, conv.padding, conv.dilation, conv.groups)
    np.testing.assert_allclose(np_of(conv(tg.tensor(x))), ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np_of(conv(tg.tensor(x[0]))), ref[0], rtol=1e-7, atol=1e-9)  # unbatched (C, H, W)


def test_conv2d_gradcheck_and_errors():
    conv = double(nn.Conv2d(2, 2, 2, stride=2, padding=1))
    x = tg.randn(1, 2, 3, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: conv(x), (x, conv.weight, conv.bias))
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=2\): expected input of shape \(N, 2, H, W\)"):
        conv(tg.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
                                dict(kernel_size=(2, 3), stride=(2, 1), groups=2, dilation=(1, 2), bias=False)])
def test_conv_transpose2d_matches_formula(seed, kw):
    conv = double(nn.ConvTranspose2d(4, 6, **kw))
    x = np.random.default_rng(seed).standard_normal((2, 4, 5, 4))
    ref = conv_transpose2d_ref(x, np_of(conv.weight), None if conv.bias is None else np_of(conv.bias), conv.stride,
                               conv.padding, conv.output_padding, conv.groups, conv.dilation)
    np.testing.assert_allclose(np_of(conv(tg.tensor(x))), ref, rtol=1e-7, atol=1e-9)


def _windows(x, k, s, p, fill):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    return np.stack([np.stack([xp[:, :, i * s:i * s + k, j * s:j * s + k] for j in range(wo)], 2)
                     for i in range(ho)], 2)  # (N, C, Ho, Wo, k, k)


def test_pooling_matches_formula(seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(np_of(nn.MaxPool2d(3, 2, 1)(tg.tensor(x))), _windows(x, 3, 2, 1, -np.inf).max((-1, -2)))
    np.testing.assert_allclose(np_of(nn.MaxPool2d(2)(tg.tensor(x))), _windows(x, 2, 2, 0, 0).max((-1, -2)))
    np.testing.assert_allclose(np_of(nn.MaxPool2d(2)(tg.tensor(x[0]))), _windows(x, 2, 2, 0, 0).max((-1, -2))[0])
    np.testing.assert_allclose(np_of(nn.AvgPool2d(3, 2, 1)(tg.tensor(x))), _windows(x, 3, 2, 1, 0).mean((-1, -2)),
                               rtol=1e-7, atol=1e-9)
    out = np_of(nn.AdaptiveAvgPool2d((3, 4))(tg.tensor(x)))
    ref = np.empty((2, 3, 3, 4))
    for i in range(3):
        for j in range(4):
            h0, h1 = (i * 7) // 3, -(-(i + 1) * 7 // 3)
            w0, w1 = (j * 6) // 4, -(-(j + 1) * 6 // 4)
            ref[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean((-1, -2))
    np.testing.assert_allclose(out, ref, rtol=1e-7, atol=1e-9)
    assert nn.AdaptiveAvgPool2d(1)(tg.tensor(x)).shape == (2, 3, 1, 1)
    with pytest.raises(ValueError, match="MaxPool2d"):
        nn.MaxPool2d(2)(tg.randn(4, 4))


# ---- normalisation ------------------------------------------------------------------------
def test_batchnorm_training_eval_and_running_stats(seed):
    rng = np.random.default_rng(seed)
    bn = double(nn.BatchNorm2d(3, momentum=0.3))
    bn.weight.data.copy_(tg.tensor(rng.uniform(0.5, 2, 3)))
    bn.bias.data.copy_(tg.tensor(rng.standard_normal(3)))
    w, b = np_of(bn.weight)[None, :, None, None], np_of(bn.bias)[None, :, None, None]
    running_mean, running_var = np.zeros(3), np.ones(3)
    for _ in range(2):
        x = rng.standard_normal((4, 3, 5, 2)) * 3 + 1
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        expected = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) * w + b
        np.testing.assert_allclose(np_of(bn(tg.tensor(x))), expected, rtol=1e-7, atol=1e-9)
        running_mean = 0.7 * running_mean + 0.3 * mean
        running_var = 0.7 * running_var + 0.3 * x.var((0, 2, 3), ddof=1)  # the running variance is unbiased
    np.testing.assert_allclose(np_of(bn.running_mean), running_mean, rtol=1e-10)
    np.testing.assert_allclose(np_of(bn.running_var), running_var, rtol=1e-10)
    assert bn.num_batches_tracked.item() == 2
    bn.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    expected = (x - running_mean[None, :, None, None]) / np.sqrt(running_var[None, :, None, None] + 1e-5) * w + b
    np.testing.assert_allclose(np_of(bn(tg.tensor(x))), expected, rtol=1e-7, atol=1e-9)
    assert bn.num_batches_tracked.item() == 2  # eval leaves the statistics alone


def test_batchnorm1d_cumulative_average_and_no_tracking(seed):
    rng = np.random.default_rng(seed)
    bn = double(nn.BatchNorm1d(4, momentum=None, affine=False))
    xs = [rng.standard_normal((6, 4)) for _ in range(3)]
    for x in xs:
        bn(tg.tensor(x))
    np.testing.assert_allclose(np_of(bn.running_mean), np.mean([x.mean(0) for x in xs], 0), rtol=1e-10)
    free = double(nn.BatchNorm1d(4, track_running_stats=False)).eval()
    x = rng.standard_normal((5, 4, 3))
    expected = (x - x.mean((0, 2), keepdims=True)) / np.sqrt(x.var((0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(np_of(free(tg.tensor(x))), expected, rtol=1e-7, atol=1e-9)
    assert free.running_mean is None and list(free.state_dict()) == ["weight", "bias"]
    assert list(bn.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\): expected input of shape \(N, 4\) or \(N, 4, L\)"):
        bn(tg.randn(3, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tg.randn(1, 4))


def test_batchnorm_gradcheck():
    bn = double(nn.BatchNorm1d(2))
    x = tg.randn(4, 2, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x), (x, bn.weight, bn.bias))


def test_layernorm_matches_formula(seed):
    rng = np.random.default_rng(seed)
    ln = double(nn.LayerNorm((4, 5)))
    ln.weight.data.copy_(tg.tensor(rng.standard_normal((4, 5))))
    ln.bias.data.copy_(tg.tensor(rng.standard_normal((4, 5))))
    x = rng.standard_normal((3, 4, 5))
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * np_of(ln.weight) + np_of(ln.bias)
    np.testing.assert_allclose(np_of(ln(tg.tensor(x))), expected, rtol=1e-7, atol=1e-9)
    small = double(nn.LayerNorm(3))
    xt = tg.randn(2, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: small(x), (xt, small.weight, small.bias))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4, 5\)\): expected input with trailing dims"):
        ln(tg.randn(3, 5, 4, dtype=tg.float64))
    assert nn.LayerNorm(3, elementwise_affine=False).weight is None


# ---- dropout and embedding ----------------------------------------------------------------
def test_dropout_train_and_eval(seed):
    tg.manual_seed(seed)
    drop = nn.Dropout(0.3)
    x = tg.ones(200, 100)
    y = np_of(drop(x))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert drop.eval()(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_embedding_lookup_and_padding_gradient():
    emb = nn.Embedding(6, 3, padding_idx=2)
    idx = tg.tensor([[0, 2, 5], [2, 1, 0]])
    out = emb(idx)
    np.testing.assert_array_equal(np_of(out), np_of(emb.weight)[np.array([[0, 2, 5], [2, 1, 0]])])
    assert (np_of(out)[0, 1] == 0).all()
    (out * tg.randn(2, 3, 3)).sum().backward()
    grad = np_of(emb.weight.grad)
    assert (grad[2] == 0).all() and (grad[3] == 0).all() and (grad[0] != 0).all()
    pre = nn.Embedding.from_pretrained(tg.randn(4, 2))
    assert not pre.weight.requires_grad and pre(tg.tensor([1])).shape == (1, 2)
    with pytest.raises(TypeError, match="integer indices"):
        emb(tg.randn(2))


def test_conv_transpose2d_gradcheck():
    conv = double(nn.ConvTranspose2d(2, 2, 2, stride=2, padding=1, output_padding=1))
    x = tg.randn(1, 2, 2, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: conv(x), (x, conv.weight, conv.bias))


def test_cnn_loads_a_pytorch_state_dict(seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed % 2**31)

    def build(m):
        return m.Sequential(m.Conv2d(3, 6, 3, padding=1), m.BatchNorm2d(6), m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(6, 4, 3, groups=2), m.AdaptiveAvgPool2d(1), m.Flatten(), m.Linear(4, 5))
    ref, mine = build(torch.nn).double(), build(nn).double()
    x = np.random.default_rng(seed).standard_normal((2, 3, 9, 8))
    ref(torch.tensor(x))  # one training step moves the running statistics away from their start
    result = mine.load_state_dict(ref.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert mine[1].num_batches_tracked.item() == 1
    ref.eval()
    mine.eval()
    np.testing.assert_allclose(np_of(mine(tg.tensor(x))), ref(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-12)
