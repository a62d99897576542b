"""The neural-network reference kernels against independent definitions written as plain loops
(no PyTorch needed): convolution, pooling, GELU, layer norm, gather, embedding gradients."""
import math

import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn.functional as F


def naive_conv2d(x, w, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for b in range(n):
        for f in range(o):
            g = f // per_group
            for i in range(oh):
                for j in range(ow):
                    patch = xp[b, g * cg:(g + 1) * cg, i * stride[0]: i * stride[0] + dilation[0] * (kh - 1) + 1: dilation[0],
                               j * stride[1]: j * stride[1] + dilation[1] * (kw - 1) + 1: dilation[1]]
                    out[b, f, i, j] = (patch * w[f]).sum()
    return out


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 4, 9, 8), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),
    ((2, 2, 5, 5), (3, 2, 1, 1), (2, 2), (0, 0), (1, 1), 1),
])
def test_conv2d_matches_the_definition(xs, ws, stride, padding, dilation, groups, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    got = F.conv2d(tg.tensor(x), tg.tensor(w), stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(got.numpy(), naive_conv2d(x, w, stride, padding, dilation, groups), rtol=1e-10, atol=1e-10)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(seed):
    # <conv(x), y> == <x, conv_transpose(y)> for the same weight and geometry.
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 2, 3, 3))
    y = rng.standard_normal(F.conv2d(tg.tensor(x), tg.tensor(w), stride=2, padding=1, groups=2).shape)
    lhs = (F.conv2d(tg.tensor(x), tg.tensor(w), stride=2, padding=1, groups=2).numpy() * y).sum()
    xt = F.conv_transpose2d(tg.tensor(y), tg.tensor(w), stride=2, padding=1, groups=2, output_padding=(0, 0))
    rhs = (xt.numpy()[:, :, :9, :7] * x).sum()
    assert xt.shape[2:] == (9, 7)
    assert lhs == pytest.approx(rhs, rel=1e-10)


def naive_pool(x, k, s, p, reduce, pad_value):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return np.array([[[[reduce(xp[b, ch, i * s:i * s + k, j * s:j * s + k]) for j in range(ow)] for i in range(oh)]
                      for ch in range(c)] for b in range(n)])


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pooling_matches_the_definition(k, s, p, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, 7, 8))
    np.testing.assert_allclose(F.max_pool2d(tg.tensor(x), k, s, p).numpy(), naive_pool(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(F.avg_pool2d(tg.tensor(x), k, s, p).numpy(), naive_pool(x, k, s, p, np.mean, 0.0))
    counted = naive_pool(np.ones_like(x), k, s, p, np.sum, 0.0)
    np.testing.assert_allclose(F.avg_pool2d(tg.tensor(x), k, s, p, count_include_pad=False).numpy(),
                               naive_pool(x, k, s, p, np.sum, 0.0) / counted)


def test_max_pool_indices_point_at_the_maxima(seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, 7, 8))
    out, idx = F.max_pool2d(tg.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, -1), idx.numpy().reshape(2, 3, -1), 2),
                                  out.numpy().reshape(2, 3, -1))


def test_adaptive_avg_pool_bins(seed):
    x = np.random.default_rng(seed).standard_normal((1, 2, 5, 7))
    got = F.adaptive_avg_pool2d(tg.tensor(x), (3, 2)).numpy()
    for i in range(3):
        for j in range(2):
            r0, r1 = (i * 5) // 3, math.ceil((i + 1) * 5 / 3)
            c0, c1 = (j * 7) // 2, math.ceil((j + 1) * 7 / 2)
            np.testing.assert_allclose(got[:, :, i, j], x[:, :, r0:r1, c0:c1].mean((2, 3)))


def test_gelu_silu_leaky_relu_match_their_formulas(seed):
    x = np.random.default_rng(seed).standard_normal(50) * 3
    t = tg.tensor(x)
    erfc = np.vectorize(math.erfc)  # 0.5 x erfc(-x/sqrt2) == 0.5 x (1 + erf(x/sqrt2)), without cancellation
    np.testing.assert_allclose(F.gelu(t).numpy(), 0.5 * x * erfc(-x / math.sqrt(2)), rtol=1e-12)
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    tanh_form = x / (1 + np.exp(-2 * u))  # == 0.5 x (1 + tanh(u))
    np.testing.assert_allclose(F.gelu(t, approximate="tanh").numpy(), tanh_form, rtol=1e-12)
    far = tg.tensor(np.array([-12.0, -8.0]))  # deep in the tail: relative accuracy is kept
    np.testing.assert_allclose(F.gelu(far).numpy(), 0.5 * far.numpy() * erfc(-far.numpy() / math.sqrt(2)), rtol=1e-12)
    np.testing.assert_allclose(F.silu(t).numpy(), x / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.leaky_relu(t, 0.1).numpy(), np.where(x > 0, x, 0.1 * x))


def test_layer_norm_matches_its_formula(seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    mean = x.mean((1, 2), keepdims=True)
    var = x.var((1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * w + b
    np.testing.assert_allclose(F.layer_norm(tg.tensor(x), (4, 5), tg.tensor(w), tg.tensor(b)).numpy(), expected, rtol=1e-10)


def test_embedding_gradient_adds_repeats_and_skips_padding(seed):
    rng = np.random.default_rng(seed)
    w = tg.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    idx = tg.tensor([[1, 1, 0], [4, 1, 0]])
    F.embedding(idx, w, padding_idx=0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.array([[0] * 3, [3] * 3, [0] * 3, [0] * 3, [1] * 3], dtype=float))


def test_losses_match_their_formulas(seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((6, 4))
    target = np.array([0, 3, 1, -100, 2, 3])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    valid = target != -100
    nll = -logp[np.arange(6)[valid], target[valid]]
    got = F.cross_entropy(tg.tensor(logits), tg.tensor(target))
    assert got.item() == pytest.approx(nll.mean(), rel=1e-12)
    smooth = -logp[valid].sum(1).mean() / 4
    got = F.cross_entropy(tg.tensor(logits), tg.tensor(target), label_smoothing=0.2)
    assert got.item() == pytest.approx(0.8 * nll.mean() + 0.2 * smooth, rel=1e-12)
    with pytest.raises(IndexError):
        F.cross_entropy(tg.tensor(logits), tg.tensor([0, 4, 1, 1, 1, 1]))


def test_attention_matches_its_formula(seed):
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 8)), rng.standard_normal((2, 6, 3))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(8)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    got = F.scaled_dot_product_attention(tg.tensor(q), tg.tensor(k), tg.tensor(v))
    np.testing.assert_allclose(got.numpy(), p @ v, rtol=1e-10)


def test_functional_errors_name_the_function():
    x = tg.randn(1, 3, 5, 5)
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(x, tg.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(tg.randn(5, 5), tg.randn(4, 3, 3, 3))
    with pytest.raises(ValueError, match="max_pool2d"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="layer_norm"):
        F.layer_norm(x, (4,))
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.5)
