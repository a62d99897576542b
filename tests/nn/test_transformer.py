"""MultiheadAttention and TransformerEncoder(Layer) against NumPy formulas, and against
PyTorch (with its state dicts loaded) where PyTorch is installed."""
import math

import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
from tilegrad.autograd import gradcheck




def np_of(t):
    return t.detach().numpy()


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mha_ref(m, q, k, v, mask=None):
    """(L, N, E) inputs; ``mask`` additive, broadcastable to (N, heads, L, S). Returns
    (output (L, N, E), weights (N, heads, L, S))."""
    E, H = m.embed_dim, m.num_heads
    D = E // H
    w, b = np_of(m.in_proj_weight), np_of(m.in_proj_bias)
    proj = [x @ w[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E] for i, x in enumerate((q, k, v))]
    heads = [p.reshape(p.shape[0], p.shape[1], H, D).transpose(1, 2, 0, 3) for p in proj]  # (N, H, seq, D)
    scores = heads[0] @ heads[1].transpose(0, 1, 3, 2) / math.sqrt(D)
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores)
    out = (weights @ heads[2]).transpose(2, 0, 1, 3).reshape(q.shape[0], q.shape[1], E)
    return out @ np_of(m.out_proj.weight).T + np_of(m.out_proj.bias), weights


def layer_norm_ref(x, ln):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + ln.eps) * np_of(ln.weight) + np_of(ln.bias)


def encoder_layer_ref(layer, x, mask=None):
    """Seq-first (L, N, E); eval mode (no dropout)."""
    def sa(y):
        return mha_ref(layer.self_attn, y, y, y, mask)[0]

    def ff(y):
        hidden = np.maximum(y @ np_of(layer.linear1.weight).T + np_of(layer.linear1.bias), 0)
        return hidden @ np_of(layer.linear2.weight).T + np_of(layer.linear2.bias)
    if layer.norm_first:
        x = x + sa(layer_norm_ref(x, layer.norm1))
        return x + ff(layer_norm_ref(x, layer.norm2))
    x = layer_norm_ref(x + sa(x), layer.norm1)
    return layer_norm_ref(x + ff(x), layer.norm2)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_matches_formula_with_masks(seed, need_weights):
    rng = np.random.default_rng(seed)
    m = nn.MultiheadAttention(8, 2).double()
    nn.init.normal_(m.in_proj_bias)
    L, S, N = 4, 5, 3
    q, kv = rng.standard_normal((L, N, 8)), rng.standard_normal((S, N, 8))
    attn = rng.random((L, S)) > 0.7
    attn[:, 0] = False  # every query keeps one key, so no row is all -inf
    pad = np.zeros((N, S), bool)
    pad[1, 3:] = True
    mask = np.where(attn, -np.inf, 0)[None, None] + np.where(pad, -np.inf, 0)[:, None, None, :]
    ref_out, ref_w = mha_ref(m, q, kv, kv, mask)
    out, w = m(tg.tensor(q), tg.tensor(kv), tg.tensor(kv), key_padding_mask=tg.tensor(pad), attn_mask=tg.tensor(attn),
               need_weights=need_weights)
    np.testing.assert_allclose(np_of(out), ref_out, rtol=1e-9, atol=1e-12)
    if need_weights:
        np.testing.assert_allclose(np_of(w), ref_w.mean(1), rtol=1e-9, atol=1e-12)
    else:
        assert w is None
    float_mask = rng.standard_normal((N * 2, L, S))  # a per-head additive mask
    out, w = m(tg.tensor(q), tg.tensor(kv), tg.tensor(kv), attn_mask=tg.tensor(float_mask), average_attn_weights=False)
    ref_out, ref_w = mha_ref(m, q, kv, kv, float_mask.reshape(N, 2, L, S))
    np.testing.assert_allclose(np_of(out), ref_out, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np_of(w), ref_w, rtol=1e-9, atol=1e-12)


def test_mha_causal_batch_first_and_unbatched(seed):
    rng = np.random.default_rng(seed)
    m = nn.MultiheadAttention(6, 3, batch_first=True).double()
    x = rng.standard_normal((2, 5, 6))
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    ref_out, _ = mha_ref(m, x.transpose(1, 0, 2), x.transpose(1, 0, 2), x.transpose(1, 0, 2), causal)
    for need_weights in (True, False):
        out, _ = m(tg.tensor(x), tg.tensor(x), tg.tensor(x), is_causal=True, need_weights=need_weights)
        np.testing.assert_allclose(np_of(out), ref_out.transpose(1, 0, 2), rtol=1e-9, atol=1e-12)
    out, w = m(tg.tensor(x[0]), tg.tensor(x[0]), tg.tensor(x[0]))
    ref_out, ref_w = mha_ref(m, x[:1].transpose(1, 0, 2), x[:1].transpose(1, 0, 2), x[:1].transpose(1, 0, 2))
    assert out.shape == (5, 6) and w.shape == (5, 5)
    np.testing.assert_allclose(np_of(out), ref_out[:, 0], rtol=1e-9, atol=1e-12)


def test_mha_kdim_vdim_and_errors():
    m = nn.MultiheadAttention(8, 2, kdim=3, vdim=5)
    assert m.in_proj_weight is None and m.k_proj_weight.shape == (8, 3)
    assert [k for k in m.state_dict()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                                           "out_proj.weight", "out_proj.bias"]
    out, w = m(tg.randn(4, 2, 8), tg.randn(6, 2, 3), tg.randn(6, 2, 5))
    assert out.shape == (4, 2, 8) and w.shape == (2, 4, 6)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=8\)"):
        m(tg.randn(4, 2, 7), tg.randn(6, 2, 3), tg.randn(6, 2, 5))
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="key_padding_mask should have shape"):
        nn.MultiheadAttention(4, 2)(tg.randn(3, 2, 4), tg.randn(3, 2, 4), tg.randn(3, 2, 4),
                                    key_padding_mask=tg.zeros(3, 2, dtype=tg.bool))


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_gradcheck(need_weights):
    tg.manual_seed(5)
    m = nn.MultiheadAttention(4, 2).double()
    x = tg.randn(3, 1, 4, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: m(x, x, x, need_weights=need_weights)[0], (x, m.in_proj_weight, m.in_proj_bias))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_formula(seed, norm_first):
    rng = np.random.default_rng(seed)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, norm_first=norm_first).double().eval()
    for ln in (layer.norm1, layer.norm2):
        nn.init.normal_(ln.weight)
        nn.init.normal_(ln.bias)
    x = rng.standard_normal((5, 2, 8))
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    out = layer(tg.tensor(x), src_mask=tg.tensor(mask))
    np.testing.assert_allclose(np_of(out), encoder_layer_ref(layer, x, mask), rtol=1e-9, atol=1e-11)


def test_encoder_stacks_copies_and_final_norm(seed):
    tg.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(8)).double().eval()
    assert len(enc.layers) == 3 and enc.layers[0] is not layer
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    np.testing.assert_array_equal(np_of(enc.layers[0].linear1.weight), np_of(enc.layers[2].linear1.weight))
    assert "layers.2.self_attn.in_proj_weight" in enc.state_dict() and "norm.weight" in enc.state_dict()
    x = tg.randn(2, 4, 8, dtype=tg.float64)
    y = x
    for lay in enc.layers:
        y = lay(y)
    np.testing.assert_allclose(np_of(enc(x)), np_of(enc.norm(y)), rtol=1e-12)
    enc.train()
    (enc(x) ** 2).sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


# ---- against PyTorch ------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_matches_pytorch(seed, batch_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed % 2**31)
    ref = torch.nn.MultiheadAttention(8, 4, batch_first=batch_first).double()
    mine = nn.MultiheadAttention(8, 4, batch_first=batch_first).double()
    mine.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(seed)
    q, kv = rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 6, 8))
    if not batch_first:
        q, kv = q.transpose(1, 0, 2).copy(), kv.transpose(1, 0, 2).copy()
    pad = np.zeros((3, 6), bool)
    pad[0, 4:] = True
    out_ref, w_ref = ref(torch.tensor(q), torch.tensor(kv), torch.tensor(kv), key_padding_mask=torch.tensor(pad))
    out, w = mine(tg.tensor(q), tg.tensor(kv), tg.tensor(kv), key_padding_mask=tg.tensor(pad))
    np.testing.assert_allclose(np_of(out), out_ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np_of(w), w_ref.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_encoder_matches_pytorch(seed, norm_first, activation):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed % 2**31)
    kw = dict(dim_feedforward=16, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first)
    ref = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                      enable_nested_tensor=False).double().eval()
    mine = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, **kw), 2).double().eval()
    result = mine.load_state_dict(ref.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    x = np.random.default_rng(seed).standard_normal((3, 5, 8))
    pad = np.zeros((3, 5), bool)
    pad[2, 3:] = True
    out_ref = ref(torch.tensor(x), src_key_padding_mask=torch.tensor(pad))
    out = mine(tg.tensor(x), src_key_padding_mask=tg.tensor(pad))
    # PyTorch's eval fast path writes zeros at padded query positions; compare the real ones.
    keep = ~pad
    np.testing.assert_allclose(np_of(out)[keep], out_ref.detach().numpy()[keep], rtol=1e-9, atol=1e-11)


def test_dropout_only_in_training(seed):
    tg.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    mha = nn.MultiheadAttention(8, 2, dropout=0.3)
    x = tg.randn(5, 2, 8)
    assert not np.allclose(np_of(layer(x)), np_of(layer(x)))
    assert not np.allclose(np_of(mha(x, x, x)[1]), np_of(mha(x, x, x)[1]))
    layer.eval()
    mha.eval()
    np.testing.assert_array_equal(np_of(layer(x)), np_of(layer(x)))
    np.testing.assert_allclose(np_of(mha(x, x, x, need_weights=False)[0]), np_of(mha(x, x, x)[0]), rtol=1e-5, atol=1e-6)
