"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells.

Parameter names, shapes and gate order are PyTorch's (``weight_ih_l{k}[_reverse]`` of shape
(gates * hidden, input), gates i,f,g,o for the LSTM and r,z,n for the GRU), so a PyTorch state
dict loads as it is. The input projection of a whole sequence is one matmul; only the hidden
projection runs step by step.
"""
import math

from ... import creation
from ...functional import cat, stack
from .. import functional as F, init
from ..parameter import Parameter
from .module import Module

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _linear(x, w, b):
    y = x @ w.mT
    return y if b is None else y + b


def _rnn_cell(mode):
    """The step function of a mode: (input gates, hidden gates, h, c) -> (h, c)."""
    def tanh_cell(gx, gh, h, c):
        return (gx + gh).tanh(), None

    def relu_cell(gx, gh, h, c):
        return (gx + gh).relu(), None

    def lstm_cell(gx, gh, h, c):
        i, f, g, o = (gx + gh).chunk(4, dim=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c

    def gru_cell(gx, gh, h, c):
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r = (xr + hr).sigmoid()
        z = (xz + hz).sigmoid()
        n = (xn + r * hn).tanh()  # the reset gate scales the hidden projection, bias included
        return (1 - z) * n + z * h, None

    return {"RNN_TANH": tanh_cell, "RNN_RELU": relu_cell, "LSTM": lstm_cell, "GRU": gru_cell}[mode]


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM: proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in range [0, 1], got {dropout}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{type(self).__name__}: hidden_size and num_layers must be positive")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(directions):
                in_size = input_size if layer == 0 else hidden_size * directions
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, in_size), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(creation.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in self._layer_names(i)] for i in range(self.num_layers * self._directions)]

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    def _layer_names(self, index):
        layer, direction = divmod(index, self._directions)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return [n + suffix for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if self.bias else 2]]

    def _check(self, x, hx):
        name = f"{type(self).__name__}(input_size={self.input_size})"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (L, N, {self.input_size}), (N, L, {self.input_size}) "
                             f"with batch_first, or (L, {self.input_size}), got shape {tuple(x.shape)}")

    def _initial_states(self, hx, batch, x, batched):
        """The (h0, c0) of every layer and direction, shaped (layers * directions, N, hidden)."""
        expected = (self.num_layers * self._directions, batch, self.hidden_size)
        if hx is None:
            h0 = creation.zeros(*expected, dtype=x.dtype, device=x.device)
            return h0, (h0 if self.mode == "LSTM" else None)
        states = tuple(hx) if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and len(states) != 2:
            raise ValueError("LSTM: hx must be a tuple (h_0, c_0)")
        out = []
        for s in states:
            s = s.unsqueeze(1) if not batched else s
            if tuple(s.shape) != expected:
                shown = expected if batched else (expected[0], expected[2])
                raise ValueError(f"{type(self).__name__}: expected hidden state of shape {shown}, "
                                 f"got shape {tuple(s.shape) if batched else tuple(s.squeeze(1).shape)}")
            out.append(s)
        return out[0], (out[1] if self.mode == "LSTM" else None)

    def forward(self, x, hx=None):
        self._check(x, hx)
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        h0, c0 = self._initial_states(hx, batch, x, batched)
        cell = _rnn_cell(self.mode)
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                index = layer * self._directions + direction
                w_ih, w_hh, *biases = [getattr(self, n) for n in self._layer_names(index)]
                b_ih, b_hh = biases if biases else (None, None)
                gx = _linear(layer_input, w_ih, b_ih)  # every time step's input projection at once
                h, c = h0[index], (c0[index] if c0 is not None else None)
                seq = [None] * steps
                for t in (reversed(range(steps)) if direction else range(steps)):
                    h, c = cell(gx[t], _linear(h, w_hh, b_hh), h, c)
                    seq[t] = h
                outputs.append(stack(seq) if steps else creation.zeros(0, batch, self.hidden_size, dtype=x.dtype, device=x.device))
                h_n.append(h)
                c_n.append(c)
            layer_input = cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output, h_n = layer_input, stack(h_n)
        c_n = stack(c_n) if self.mode == "LSTM" else None
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)

    def extra_repr(self):
        return super().extra_repr() + (", nonlinearity=relu" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """Long short-term memory; returns (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit; returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class RNNCellBase(Module):
    """One time step: ``cell(x, h)`` with x (N, input_size) or (input_size,)."""

    def __init__(self, mode, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gate_size = _GATES[mode] * hidden_size
        self.weight_ih = Parameter(creation.empty(gate_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(gate_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        stdv = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _step(self, x, h, c=None):
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}(input_size={self.input_size}): expected input of shape "
                             f"(N, {self.input_size}) or ({self.input_size},), got shape {tuple(x.shape)}")
        batched = x.ndim == 2
        x = x if batched else x.unsqueeze(0)
        if h is None:
            h = creation.zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
            c = h if self.mode == "LSTM" and c is None else c
        elif not batched:
            h, c = h.unsqueeze(0), (c.unsqueeze(0) if c is not None else None)
        h, c = _rnn_cell(self.mode)(_linear(x, self.weight_ih, self.bias_ih), _linear(h, self.weight_hh, self.bias_hh), h, c)
        if not batched:
            h, c = h.squeeze(0), (c.squeeze(0) if c is not None else None)
        return h, c

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias,
                         device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x, hx=None):
        return self._step(x, hx)[0]


class LSTMCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, x, hx=None):
        h, c = (None, None) if hx is None else hx
        return self._step(x, h, c)


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, x, hx=None):
        return self._step(x, hx)[0]
