"""``MultiheadAttention``, ``TransformerEncoderLayer`` and ``TransformerEncoder``, with
PyTorch's parameter names (``in_proj_weight``, ``in_proj_bias``, ``out_proj``, ``linear1``,
``norm1``, ...) so PyTorch state dicts load.

Masks follow PyTorch's conventions: a bool ``attn_mask`` or ``key_padding_mask`` marks with True
the positions that may NOT be attended to; a float mask is added to the scores. Both become one
additive float mask before attention.
"""
import copy
import math

import numpy as np

from ... import creation
from ...tensor import Tensor, where
from .. import functional as F, init
from ..parameter import Parameter
from .activation import ReLU
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm


def _linear(x, w, b):
    y = x @ w.mT
    return y if b is None else y + b


def _additive(mask, dtype, device):
    """A bool mask (True = blocked) as 0 / -inf; a float mask as it is."""
    if mask.dtype.is_floating_point:
        return mask.to(dtype)
    return where(mask, float("-inf"), creation.zeros(mask.shape, dtype=dtype, device=device))


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of size embed_dim / num_heads. ``forward`` returns
    (output, weights); the weights (averaged over heads unless ``average_attn_weights=False``)
    are computed only when ``need_weights`` is True, otherwise attention runs through
    ``F.scaled_dot_product_attention``."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self.add_zero_attn, self.bias_k, self.bias_v = False, None, None

        def param(*shape):
            return Parameter(creation.empty(*shape, device=device, dtype=dtype))
        if self._qkv_same_embed_dim:
            self.in_proj_weight = param(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = param(embed_dim, embed_dim)
            self.k_proj_weight = param(embed_dim, self.kdim)
            self.v_proj_weight = param(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = param(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        # PyTorch's choice: Xavier for the input projection, zero biases, Linear's default out_proj weight.
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _check(self, query, key, value):
        E = self.embed_dim
        dims = (query.ndim, key.ndim, value.ndim)
        if dims not in ((3, 3, 3), (2, 2, 2)) or query.shape[-1] != E or key.shape[-1] != self.kdim \
                or value.shape[-1] != self.vdim or key.shape[:-1] != value.shape[:-1]:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ValueError(f"MultiheadAttention(embed_dim={E}): expected query {layout} or (L, E) with E={E}, and key "
                             f"and value of matching leading dims with last dims {self.kdim} and {self.vdim}; got "
                             f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}")

    def _mask(self, attn_mask, key_padding_mask, is_causal, L, S, N, dtype, device):
        """One additive mask broadcastable to (N, heads, L, S), or None."""
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = Tensor(np.triu(np.ones((L, S), dtype=bool), 1)).to(device)
        if attn_mask is not None:
            if attn_mask.shape == (L, S):
                mask = _additive(attn_mask, dtype, device)
            elif attn_mask.shape == (N * self.num_heads, L, S):
                mask = _additive(attn_mask, dtype, device).reshape(N, self.num_heads, L, S)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask should have shape {(L, S)} or "
                                 f"{(N * self.num_heads, L, S)}, got {tuple(attn_mask.shape)}")
        if key_padding_mask is not None:
            if key_padding_mask.shape != (N, S):
                raise ValueError(f"MultiheadAttention: key_padding_mask should have shape {(N, S)}, "
                                 f"got {tuple(key_padding_mask.shape)}")
            pad = _additive(key_padding_mask, dtype, device).reshape(N, 1, 1, S)
            mask = pad if mask is None else mask + pad
        return mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        self._check(query, key, value)
        batched = query.ndim == 3
        if not batched:  # (L, E): a batch of one, and the padding mask (S,) with it
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        L, N, E = query.shape
        S, H, D = key.shape[0], self.num_heads, self.head_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        # (seq, N, E) -> (N, heads, seq, head_dim)
        q = _linear(query, w_q, b_q).reshape(L, N, H, D).permute(1, 2, 0, 3)
        k = _linear(key, w_k, b_k).reshape(S, N, H, D).permute(1, 2, 0, 3)
        v = _linear(value, w_v, b_v).reshape(S, N, H, D).permute(1, 2, 0, 3)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, L, S, N, q.dtype, q.device)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.mT) * (1.0 / math.sqrt(D))
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            if dropout_p > 0:
                weights = F.dropout(weights, dropout_p, True)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = self.out_proj(out.permute(2, 0, 1, 3).reshape(L, N, E))
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if weights is not None:
            if average_attn_weights:
                weights = weights.mean(1)
            if not batched:
                weights = weights.squeeze(0)
        return out, weights

    def extra_repr(self):
        return ""


def _activation(activation):
    if activation == "relu":
        return ReLU()
    if activation == "gelu":
        from .activation import GELU
        return GELU()
    if callable(activation):
        return activation
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and LayerNorm:
    after the residual (post-norm, the default) or before the block (``norm_first=True``)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)
        self.batch_first = batch_first

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (deep copies, so they start equal, as in
    PyTorch), then an optional final ``norm``."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(out) if self.norm is not None else out
