"""RNN, LSTM and GRU against their documented equations, step by step in NumPy; PyTorch state
dicts and outputs where PyTorch is installed; gradcheck on small ones."""
import numpy as np
import pytest

import tilegrad as tg
import tilegrad.nn as nn
from tilegrad.autograd import gradcheck


def np_of(t):
    return t.detach().numpy()


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of the equations in PyTorch's documentation."""
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == "LSTM":
        i, f, g, o = np.split(gx + gh, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    if mode == "GRU":
        xr, xz, xn = np.split(gx, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, c
    pre = gx + gh
    return (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)), c


def ref_forward(module, x, h0, c0):
    """The whole multi-layer, maybe bidirectional, network on (L, N, H_in) input."""
    mode, d = module.mode, 2 if module.bidirectional else 1
    layer_in, h_n, c_n = x, [], []
    for layer in range(module.num_layers):
        outs = []
        for direction in range(d):
            k = layer * d + direction
            params = [np_of(getattr(module, n)) for n in module._layer_names(k)]
            w_ih, w_hh = params[:2]
            b_ih, b_hh = params[2:] if module.bias else (0, 0)
            h, c = h0[k], c0[k]
            seq = [None] * x.shape[0]
            for t in (reversed(range(x.shape[0])) if direction else range(x.shape[0])):
                h, c = ref_step(mode, layer_in[t], h, c, w_ih, w_hh, b_ih, b_hh)
                seq[t] = h
            outs.append(np.stack(seq))
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, -1)
    return layer_in, np.stack(h_n), np.stack(c_n)


CASES = [("RNN", dict()), ("RNN", dict(nonlinearity="relu", num_layers=2)), ("LSTM", dict()),
         ("LSTM", dict(num_layers=2, bidirectional=True)), ("GRU", dict(bias=False)),
         ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True))]


@pytest.mark.parametrize("kind, kw", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_matches_equations(seed, kind, kw):
    rng = np.random.default_rng(seed)
    module = getattr(nn, kind)(3, 4, **kw).double()
    L, N, d = 5, 2, 2 if module.bidirectional else 1
    x = rng.standard_normal((L, N, 3))
    h0 = rng.standard_normal((module.num_layers * d, N, 4))
    c0 = rng.standard_normal(h0.shape)
    ref_out, ref_h, ref_c = ref_forward(module, x, h0, c0 if kind == "LSTM" else [None] * len(h0))
    x_in = x.transpose(1, 0, 2) if module.batch_first else x
    hx = (tg.tensor(h0), tg.tensor(c0)) if kind == "LSTM" else tg.tensor(h0)
    out, state = module(tg.tensor(x_in), hx)
    out = np_of(out).transpose(1, 0, 2) if module.batch_first else np_of(out)
    assert out.shape == (L, N, 4 * d)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    h_n = state[0] if kind == "LSTM" else state
    np.testing.assert_allclose(np_of(h_n), ref_h, rtol=1e-10, atol=1e-12)
    if kind == "LSTM":
        np.testing.assert_allclose(np_of(state[1]), ref_c, rtol=1e-10, atol=1e-12)


def test_default_initial_state_is_zero_and_unbatched_input(seed):
    rng = np.random.default_rng(seed)
    lstm = nn.LSTM(3, 4).double()
    x = rng.standard_normal((6, 3))
    out, (h, c) = lstm(tg.tensor(x))
    ref_out, ref_h, ref_c = ref_forward(lstm, x[:, None], np.zeros((1, 1, 4)), np.zeros((1, 1, 4)))
    assert out.shape == (6, 4) and h.shape == (1, 4) and c.shape == (1, 4)
    np.testing.assert_allclose(np_of(out), ref_out[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np_of(c), ref_c[:, 0], rtol=1e-10, atol=1e-12)


def test_parameter_names_and_shapes():
    gru = nn.GRU(3, 5, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in gru.state_dict().items()}
    assert list(shapes)[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert shapes["weight_ih_l0_reverse"] == (15, 3) and shapes["weight_ih_l1"] == (15, 10)
    assert shapes["weight_hh_l1_reverse"] == (15, 5) and len(shapes) == 16
    assert nn.LSTM(3, 5).weight_ih_l0.shape == (20, 3)
    assert len(list(nn.RNN(3, 5, bias=False).parameters())) == 2


def test_shape_errors():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM\(input_size=3\): expected input of shape"):
        lstm(tg.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"expected hidden state of shape \(2, 2, 4\), got shape \(1, 2, 4\)"):
        lstm(tg.randn(5, 2, 3), (tg.zeros(1, 2, 4), tg.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


def test_dropout_between_layers_only_in_training():
    tg.manual_seed(0)
    rnn = nn.RNN(3, 4, num_layers=2, dropout=0.5).eval()
    x = tg.randn(4, 2, 3)
    a, b = rnn(x)[0], rnn(x)[0]
    np.testing.assert_array_equal(np_of(a), np_of(b))  # eval: deterministic
    single = nn.RNN(3, 4, dropout=0.0)
    assert single.dropout == 0.0


def test_cells_match_one_step(seed):
    rng = np.random.default_rng(seed)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    for cell, mode in [(nn.RNNCell(3, 4), "RNN_TANH"), (nn.LSTMCell(3, 4), "LSTM"), (nn.GRUCell(3, 4), "GRU")]:
        cell = cell.double()
        params = [np_of(p) for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
        ref_h, ref_c = ref_step(mode, x, h, c, *params)
        if mode == "LSTM":
            out_h, out_c = cell(tg.tensor(x), (tg.tensor(h), tg.tensor(c)))
            np.testing.assert_allclose(np_of(out_c), ref_c, rtol=1e-10)
        else:
            out_h = cell(tg.tensor(x), tg.tensor(h))
        np.testing.assert_allclose(np_of(out_h), ref_h, rtol=1e-10)
        single = cell(tg.tensor(x[0]))  # unbatched, zero state
        assert (single[0] if mode == "LSTM" else single).shape == (4,)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gradcheck(kind):
    tg.manual_seed(3)
    module = getattr(nn, kind)(2, 2, bidirectional=True).double()
    x = tg.randn(3, 1, 2, dtype=tg.float64, requires_grad=True)
    params = list(module.parameters())[:4]
    assert gradcheck(lambda x, *ps: module(x)[0], (x, *params))


def test_backward_through_time_reaches_every_parameter():
    lstm = nn.LSTM(3, 4, num_layers=2)
    out, (h, c) = lstm(tg.randn(5, 2, 3))
    (out.sum() + c.sum()).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum().item()) > 0 for p in lstm.parameters())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_matches_pytorch(seed, kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed % 2**31)
    ref = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    mine = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    assert not mine.load_state_dict(ref.state_dict()).missing_keys
    x = np.random.default_rng(seed).standard_normal((2, 6, 3))
    h0 = np.random.default_rng(seed + 1).standard_normal((4, 2, 5))
    hx_ref = (torch.tensor(h0), torch.tensor(h0 * 0.5)) if kind == "LSTM" else torch.tensor(h0)
    hx = (tg.tensor(h0), tg.tensor(h0 * 0.5)) if kind == "LSTM" else tg.tensor(h0)
    out_ref, state_ref = ref(torch.tensor(x), hx_ref)
    out, state = mine(tg.tensor(x), hx)
    np.testing.assert_allclose(np_of(out), out_ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    flat_ref = state_ref if kind == "LSTM" else (state_ref,)
    flat = state if kind == "LSTM" else (state,)
    for a, b in zip(flat, flat_ref):
        np.testing.assert_allclose(np_of(a), b.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_dropout_between_layers_in_training():
    tg.manual_seed(0)
    lstm = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = tg.randn(4, 2, 3)
    a, b = lstm(x)[0], lstm(x)[0]
    assert not np.allclose(np_of(a), np_of(b))  # a fresh dropout mask per call
    single = nn.LSTM(3, 8, num_layers=1, dropout=0.5)  # nothing between layers to drop
    np.testing.assert_array_equal(np_of(single(x)[0]), np_of(single(x)[0]))
