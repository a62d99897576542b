"""RMSprop, with PyTorch's algorithm (torch.optim.RMSprop):

    g = -grad if maximize else grad
    g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    centered:  a = a + (1 - alpha) * (g - a);  avg = sqrt(v - a * a) + eps
    otherwise: avg = sqrt(v) + eps
    momentum > 0:  buf = momentum * buf + g / avg;  p = p - lr * buf
    otherwise:     p = p - lr * g / avg
"""
from ..backends.reference import xp_of
from .optimizer import Optimizer, _check_nonneg, _lerp_


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _check_group(self, group):
        _check_nonneg("learning rate", group["lr"])
        _check_nonneg("epsilon value", group["eps"])
        _check_nonneg("momentum value", group["momentum"])
        _check_nonneg("weight_decay value", group["weight_decay"])
        _check_nonneg("alpha value", group["alpha"])

    def _update(self, group, p, grad, state):
        d = p._data
        xp = xp_of(d)
        alpha = group["alpha"]
        if not state:
            state["step"] = 0
            state["square_avg"] = self._buffer(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = self._buffer(p)
            if group["centered"]:
                state["grad_avg"] = self._buffer(p)
        state["step"] += 1
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * d
        v = state["square_avg"]._data
        v *= alpha
        v += (1 - alpha) * g * g
        if group["centered"]:
            a = state.setdefault("grad_avg", self._buffer(p))._data
            _lerp_(a, g, 1 - alpha)
            avg = xp.sqrt(v - a * a)
        else:
            avg = xp.sqrt(v)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state.setdefault("momentum_buffer", self._buffer(p))._data
            buf *= group["momentum"]
            buf += g / avg
            d -= group["lr"] * buf
        else:
            d -= group["lr"] * (g / avg)
