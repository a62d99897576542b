"""tilegrad.nn.functional against PyTorch CPU, forward and gradients (skipped without torch)."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CASES = [
    ("conv2d", lambda f, x, w, b: f.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
     [(2, 4, 9, 8), (6, 2, 3, 3), (6,)]),
    ("conv_transpose2d", lambda f, x, w: f.conv_transpose2d(x, w, stride=2, padding=(1, 0), output_padding=1, groups=2),
     [(2, 4, 5, 6), (4, 3, 3, 2)]),
    ("max_pool2d", lambda f, x: f.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(2, 3, 9, 8)]),
    ("avg_pool2d", lambda f, x: f.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [(2, 3, 9, 8)]),
    ("adaptive_avg_pool2d", lambda f, x: f.adaptive_avg_pool2d(x, (4, 3)), [(2, 3, 9, 8)]),
    ("gelu", lambda f, x: f.gelu(x), [(4, 7)]),
    ("gelu_tanh", lambda f, x: f.gelu(x, approximate="tanh"), [(4, 7)]),
    ("silu", lambda f, x: f.silu(x), [(4, 7)]),
    ("leaky_relu", lambda f, x: f.leaky_relu(x, 0.2), [(4, 7)]),
    ("layer_norm", lambda f, x, w, b: f.layer_norm(x, (3, 4), w, b), [(2, 3, 4), (3, 4), (3, 4)]),
    ("linear", lambda f, x, w, b: f.linear(x, w, b), [(5, 3, 4), (6, 4), (6,)]),
    ("sdpa_causal", lambda f, q, k, v: f.scaled_dot_product_attention(q, k, v, is_causal=True), [(2, 3, 5, 8)] * 3),
    ("log_softmax", lambda f, x: f.log_softmax(x, dim=1), [(3, 5, 2)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradients_match_pytorch(name, fn, shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    ours = [tg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = fn(F, *ours), fn(TF, *theirs)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    g = rng.standard_normal(ty.shape)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kwargs", [{}, {"weight": True}, {"label_smoothing": 0.1}, {"weight": True, "label_smoothing": 0.2},
                                    {"reduction": "sum"}, {"reduction": "none", "label_smoothing": 0.3}])
def test_cross_entropy_matches_pytorch(kwargs, seed):
    rng = np.random.default_rng(seed)
    logits, target = rng.standard_normal((7, 5)), np.array([0, 4, 2, -100, 1, 3, 3])
    weight = rng.uniform(0.5, 2, 5)
    ours_kw, theirs_kw = dict(kwargs), dict(kwargs)
    if kwargs.get("weight"):
        ours_kw["weight"], theirs_kw["weight"] = tg.tensor(weight), torch.tensor(weight)
    x, tx = tg.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    y = F.cross_entropy(x, tg.tensor(target), **ours_kw)
    ty = TF.cross_entropy(tx, torch.tensor(target), **theirs_kw)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-10)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_batch_norm_training_updates_running_stats_like_pytorch(seed):
    x = np.random.default_rng(seed).standard_normal((4, 3, 5, 5))
    rm, rv = tg.zeros(3, dtype=tg.float64), tg.ones(3, dtype=tg.float64)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    y = F.batch_norm(tg.tensor(x), rm, rv, training=True, momentum=0.3)
    ty = TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.3)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-10)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)
