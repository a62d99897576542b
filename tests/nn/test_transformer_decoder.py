"""TransformerDecoderLayer, TransformerDecoder and Transformer against PyTorch with its state
dicts loaded: outputs and the gradients of inputs and every parameter, under causal, memory and
padding masks, post- and pre-norm, batch-first or not, relu or gelu."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn

torch = pytest.importorskip("torch")
E, H, FF = 12, 3, 20
TOL = dict(rtol=1e-9, atol=1e-11)
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # PyTorch's own notice


def _load(ours, theirs):
    ours = ours.double()
    result = ours.load_state_dict(theirs.double().state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours


def _masks(rng, L, S, N, kind):
    """(tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask) as NumPy arrays."""
    if kind == "none":
        return None, None, None, None
    if kind == "float-causal":
        causal = np.triu(np.full((L, L), -np.inf), 1)
        return causal, rng.standard_normal((L, S)), None, None
    causal = np.triu(np.ones((L, L), dtype=bool), 1)
    memory = rng.random((L, S)) < 0.3
    memory[:, 0] = False  # every row keeps a key to attend to
    tgt_pad = np.zeros((N, L), dtype=bool)
    tgt_pad[0, L - 2:] = True
    mem_pad = np.zeros((N, S), dtype=bool)
    mem_pad[-1, S - 3:] = True
    return causal, memory, tgt_pad, mem_pad


def _run(ours, theirs, args_np, kwargs_np, rng):
    """Call both on the same arrays; compare outputs and the gradients of inputs and parameters."""
    a = [tg.tensor(x, requires_grad=True) for x in args_np]
    b = [torch.tensor(x, requires_grad=True) for x in args_np]
    ka = {k: tg.tensor(v) for k, v in kwargs_np.items() if v is not None}
    kb = {k: torch.tensor(v) for k, v in kwargs_np.items() if v is not None}
    ya, yb = ours(*a, **ka), theirs(*b, **kb)
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), **TOL)
    g = rng.standard_normal(tuple(yb.shape))
    ya.backward(tg.tensor(g))
    yb.backward(torch.tensor(g))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), **TOL)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), err_msg=name, **TOL)


def _inputs(rng, L, S, N, batch_first):
    tgt, mem = rng.standard_normal((L, N, E)), rng.standard_normal((S, N, E))
    if batch_first:
        tgt, mem = tgt.transpose(1, 0, 2).copy(), mem.transpose(1, 0, 2).copy()
    return tgt, mem


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masks", ["none", "float-causal", "bool-padding"])
def test_decoder_layer_matches_torch(norm_first, batch_first, activation, masks, seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(dim_feedforward=FF, dropout=0.0, activation=activation, batch_first=batch_first,
                  norm_first=norm_first)
    theirs = torch.nn.TransformerDecoderLayer(E, H, **kwargs)
    ours = _load(nn.TransformerDecoderLayer(E, H, **kwargs), theirs)
    L, S, N = 5, 7, 2
    names = ("tgt_mask", "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask")
    _run(ours, theirs, _inputs(rng, L, S, N, batch_first), dict(zip(names, _masks(rng, L, S, N, masks))), rng)


@pytest.mark.parametrize("norm", [False, True])
def test_decoder_stack_matches_torch(norm, seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(dim_feedforward=FF, dropout=0.0, batch_first=True)
    theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, H, **kwargs), 3,
                                         torch.nn.LayerNorm(E) if norm else None)
    ours = _load(nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, **kwargs), 3, nn.LayerNorm(E) if norm else None),
                 theirs)
    mask = np.triu(np.full((6, 6), -np.inf), 1)
    _run(ours, theirs, _inputs(rng, 6, 4, 3, True), dict(tgt_mask=mask, tgt_is_causal=None), rng)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(batch_first, norm_first, seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
                  batch_first=batch_first, norm_first=norm_first)
    theirs = torch.nn.Transformer(**kwargs)
    ours = _load(nn.Transformer(**kwargs), theirs)
    S, L, N = 7, 5, 2
    src = rng.standard_normal((S, N, E))
    tgt = rng.standard_normal((L, N, E))
    if batch_first:
        src, tgt = src.transpose(1, 0, 2).copy(), tgt.transpose(1, 0, 2).copy()
    src_pad = np.zeros((N, S), dtype=bool)
    src_pad[1, -2:] = True
    masks = dict(tgt_mask=np.triu(np.ones((L, L), dtype=bool), 1), src_key_padding_mask=src_pad,
                 memory_key_padding_mask=src_pad)
    _run(ours, theirs, (src, tgt), masks, rng)


def test_unbatched_matches_torch(seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(d_model=E, nhead=H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=FF, dropout=0.0)
    theirs = torch.nn.Transformer(**kwargs)
    ours = _load(nn.Transformer(**kwargs), theirs)
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=tg.float64).numpy()
    _run(ours, theirs, (rng.standard_normal((6, E)), rng.standard_normal((4, E))), dict(tgt_mask=mask), rng)


def test_square_subsequent_mask_matches_torch():
    ours = nn.Transformer.generate_square_subsequent_mask(6)
    assert ours.dtype == tg.float32
    np.testing.assert_array_equal(ours.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(6).numpy())


def test_transformer_initialises_matrices_xavier_and_layers_differently():
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF)
    w0 = model.decoder.layers[0].linear1.weight.detach().numpy()
    w1 = model.decoder.layers[1].linear1.weight.detach().numpy()
    bound = np.sqrt(6 / (E + FF))
    assert np.abs(w0).max() <= bound and np.abs(w0).max() > 0.8 * bound and not np.array_equal(w0, w1)


def test_wrong_shapes_raise():
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=FF)
    with pytest.raises(ValueError, match=r"Transformer\(d_model=12\).*\(S, N, E\)"):
        model(tg.randn(5, 2, E), tg.randn(4, 3, E))
    with pytest.raises(ValueError, match=r"Transformer\(d_model=12\)"):
        model(tg.randn(5, 2, E), tg.randn(4, 2, E + 1))
    with pytest.raises(ValueError, match="TransformerDecoderLayer"):
        nn.TransformerDecoderLayer(E, H)(tg.randn(5, 2, E), tg.randn(4, E))
