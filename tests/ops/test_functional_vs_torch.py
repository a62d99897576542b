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


def _class_targets(rng, shape, ignore_index):
    """Class indices for logits of ``shape`` ((C,), (N, C) or (N, C, d...)), about a fifth ignored."""
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, n_classes, size=tshape)
    if len(shape) > 1:
        target[rng.random(tshape) < 0.2] = ignore_index
    return np.asarray(target), n_classes


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(9, 7), (3, 5, 4), (2, 4, 3, 2), (6,), (33, 17)])
@pytest.mark.parametrize("kwargs", [{}, {"weight": True, "reduction": "none"},
                                    {"label_smoothing": 0.15, "ignore_index": 2},
                                    {"weight": True, "label_smoothing": 0.3, "reduction": "sum"},
                                    {"weight": True, "label_smoothing": 0.1}])
def test_cross_entropy_class_indices_match_pytorch(dtype, shape, kwargs, seed):
    """The fused op (native kernels for float32) against PyTorch: k-dim and 1-D inputs, every option."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * 2
    target, n_classes = _class_targets(rng, shape, kwargs.get("ignore_index", -100))
    ours_kw, theirs_kw = dict(kwargs), dict(kwargs)
    if kwargs.get("weight"):
        weight = rng.uniform(0.5, 2, n_classes)
        ours_kw["weight"] = tg.tensor(weight.astype(dtype))
        theirs_kw["weight"] = torch.tensor(weight.astype(dtype))
    x = tg.tensor(logits.astype(dtype), requires_grad=True)
    tx = torch.tensor(logits.astype(dtype), requires_grad=True)
    y = F.cross_entropy(x, tg.tensor(target), **ours_kw)
    ty = TF.cross_entropy(tx, torch.tensor(target), **theirs_kw)
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (2e-5, 1e-6)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    g = rng.standard_normal(ty.shape)
    (y * tg.tensor(g.astype(dtype))).sum().backward()
    (ty * torch.tensor(g.astype(dtype))).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("relu", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("k,s,p,d,ceil", [(3, 2, 1, 1, False), (2, 2, 0, 1, True), (3, 1, 1, 2, True),
                                         (3, 3, 1, 1, True)])
def test_max_pool2d_float32_matches_pytorch(relu, k, s, p, d, ceil, seed):
    """The native max pooling against PyTorch in float32: values, indices (also where a ReLU makes
    windows tie) and the input gradient."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 17, 29)).astype(np.float32)
    if relu:
        x = np.maximum(x, 0)
    ours, theirs = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(ours, k, s, p, d, ceil_mode=ceil, return_indices=True)
    ty, tidx = TF.max_pool2d(theirs, k, s, p, d, ceil_mode=ceil, return_indices=True)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    g = rng.standard_normal(ty.shape).astype(np.float32)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k,s,p,ceil,include,divisor", [(3, 2, 1, False, True, None), (2, 2, 0, True, True, None),
                                                        (3, 1, 1, True, False, None), (3, 2, 1, True, False, 5),
                                                        (4, 3, 2, True, True, None), (3, 2, 1, False, True, -4)])
def test_avg_pool2d_float32_matches_pytorch(k, s, p, ceil, include, divisor, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 17, 29)).astype(np.float32)
    ours, theirs = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.avg_pool2d(ours, k, s, p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
    ty = TF.avg_pool2d(theirs, k, s, p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    (y * tg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("divisor,error", [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_avg_pool2d_rejects_divisors_as_pytorch(divisor, error):
    x = tg.tensor(np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32))
    with pytest.raises(error, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=divisor)


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
