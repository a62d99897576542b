"""RAdam (rectified Adam, Liu et al. 2019), with PyTorch's algorithm (torch.optim.RAdam):

    g = -grad if maximize else grad
    decoupled: p = p * (1 - lr * weight_decay)      otherwise: g = g + weight_decay * p
    t = t + 1
    m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
    rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2 ** t / (1 - beta2 ** t)
    rho_t > 5:  p = p - lr * m / (1 - beta1 ** t) * sqrt(1 - beta2 ** t) / (sqrt(v) + eps) * r_t,
                r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    otherwise:  p = p - lr * m / (1 - beta1 ** t)   (the variance is not yet trusted)
"""
import math

from ..backends.reference import xp_of
from .adam import Adam
from .optimizer import Optimizer, _adam_moments


class RAdam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    _check_group = Adam._check_group

    def _update(self, group, p, grad, state):
        d = p._data
        xp = xp_of(d)
        _, m, v = _adam_moments(self, group, p, grad, state)
        lr, (beta1, beta2), step = group["lr"], group["betas"], state["step"]
        bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
        corrected = m / bias1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2 ** step / bias2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            denom = xp.sqrt(v)
            denom += group["eps"]
            d -= corrected * lr * (math.sqrt(bias2) / denom) * rect
        else:
            d -= corrected * lr
