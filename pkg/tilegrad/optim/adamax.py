"""Adamax (Adam with the infinity norm), with PyTorch's algorithm (torch.optim.Adamax):

    g = -grad if maximize else grad;  g = g + weight_decay * p
    t = t + 1
    m = m + (1 - beta1) * (g - m)
    u = max(beta2 * u, |g| + eps)
    p = p - lr / (1 - beta1 ** t) * m / u
"""
from ..backends.reference import xp_of
from .adam import Adam
from .optimizer import Optimizer, _lerp_


class Adamax(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize))

    _check_group = Adam._check_group

    def _update(self, group, p, grad, state):
        d = p._data
        xp = xp_of(d)
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._buffer(p)
            state["exp_inf"] = self._buffer(p)
        beta1, beta2 = group["betas"]
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * d
        m, u = state["exp_avg"]._data, state["exp_inf"]._data
        _lerp_(m, g, 1 - beta1)
        u *= beta2
        xp.maximum(u, xp.abs(g) + group["eps"], out=u)
        d -= group["lr"] / (1 - beta1 ** state["step"]) * (m / u)
