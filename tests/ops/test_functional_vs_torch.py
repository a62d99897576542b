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


# (q, k, v shapes, mask: None | ("bool" | "float", shape), is_causal, scale)
SDPA_CASES = [
    ("causal_L_gt_S", (2, 3, 7, 8), (2, 3, 4, 8), (2, 3, 4, 5), None, True, None),
    ("causal_L_lt_S", (2, 2, 3, 8), (2, 2, 9, 8), (2, 2, 9, 8), None, True, 0.5),
    ("bool_mask_LS", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3), ("bool", (5, 6)), False, None),
    ("bool_key_padding", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3), ("bool", (2, 1, 1, 6)), False, None),
    ("float_mask_per_head", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3), ("float", (3, 5, 6)), False, 0.2),
    ("float_mask_full", (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3), ("float", (2, 3, 5, 6)), False, None),
    ("kv_broadcast", (2, 3, 5, 4), (1, 3, 6, 4), (3, 6, 2), ("float", (5, 1)), False, None),
    ("q_broadcast", (1, 5, 4), (3, 6, 4), (3, 6, 2), None, True, None),
    ("fully_masked_rows", (2, 5, 4), (2, 6, 4), (2, 6, 3), ("dead", (5, 6)), False, None),
    ("ragged_3d", (3, 67, 13), (3, 133, 13), (3, 133, 9), ("bool", (3, 67, 133)), False, None),
    ("ragged_causal", (2, 150, 16), (2, 150, 16), (2, 150, 24), None, True, None),
]


def _sdpa_mask(rng, kind, shape):
    if kind == "float":
        return rng.standard_normal(shape)
    keep = rng.random(shape) < 0.6
    keep[..., 0] = True
    if kind == "dead":  # rows 1 and 3 attend to nothing: PyTorch gives 0 there, and 0 gradients
        keep[..., 1, :] = keep[..., 3, :] = False
    return keep


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,qs,ks,vs,mask,causal,scale", SDPA_CASES, ids=[c[0] for c in SDPA_CASES])
def test_sdpa_forward_and_gradients_match_pytorch(name, qs, ks, vs, mask, causal, scale, dtype, seed):
    """float64 runs the reference kernels, float32 the native ones: both against PyTorch."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs)]
    m = None if mask is None else _sdpa_mask(rng, *mask)
    if m is not None and m.dtype != bool:
        m = m.astype(dtype)
    ours = [tg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = F.scaled_dot_product_attention(*ours, attn_mask=None if m is None else tg.tensor(m), is_causal=causal, scale=scale)
    ty = TF.scaled_dot_product_attention(*theirs, attn_mask=None if m is None else torch.tensor(m), is_causal=causal,
                                         scale=scale)
    rtol, atol = (1e-9, 1e-10) if dtype == "float64" else (2e-4, 2e-5)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(ty.shape).astype(dtype)
    y.backward(tg.tensor(g))
    ty.backward(torch.tensor(g))
    for a, b, what in zip(ours, theirs, "qkv"):
        assert a.grad.shape == tuple(b.grad.shape), what
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad of {what}")


def test_sdpa_learned_float_mask_gets_pytorch_gradient(seed):
    rng = np.random.default_rng(seed)
    q, k, v, bias = (rng.standard_normal(s) for s in ((2, 4, 3), (2, 5, 3), (2, 5, 2), (4, 5)))
    ours = [tg.tensor(a, requires_grad=True) for a in (q, k, v, bias)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v, bias)]
    F.scaled_dot_product_attention(*ours[:3], attn_mask=ours[3]).sum().backward()
    TF.scaled_dot_product_attention(*theirs[:3], attn_mask=theirs[3]).sum().backward()
    np.testing.assert_allclose(ours[3].grad.numpy(), theirs[3].grad.numpy(), rtol=1e-9, atol=1e-10)


def test_sdpa_rejects_what_pytorch_rejects():
    q, k, v = tg.randn(2, 4, 3), tg.randn(2, 5, 3), tg.randn(2, 5, 2)
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tg.ones(4, 5), is_causal=True)
    with pytest.raises(ValueError, match="broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tg.ones(3, 2, 4, 5))
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.scaled_dot_product_attention(tg.randn(3), k, v)
