"""NAdam (Adam with Nesterov momentum, Dozat 2016), with PyTorch's algorithm (torch.optim.NAdam):

    g = -grad if maximize else grad
    decoupled: p = p * (1 - lr * weight_decay)      otherwise: g = g + weight_decay * p
    t = t + 1
    mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay));  mu_{t+1} likewise
    mu_product = mu_product * mu_t
    m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
    denom = sqrt(v / (1 - beta2 ** t)) + eps
    p = p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
          - lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom

``mu_product`` is kept as a Python float (PyTorch keeps a float32 scalar tensor, so float32 runs
agree to float32 rounding).
"""
from ..backends.reference import xp_of
from .adam import Adam
from .optimizer import Optimizer, _adam_moments, _check_nonneg


class NAdam(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _check_group(self, group):
        Adam._check_group(self, group)
        _check_nonneg("momentum_decay value", group["momentum_decay"])

    def _update(self, group, p, grad, state):
        d = p._data
        g, m, v = _adam_moments(self, group, p, grad, state)
        state.setdefault("mu_product", 1.0)
        lr, (beta1, beta2), step = group["lr"], group["betas"], state["step"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        state["mu_product"] *= mu
        mu_product = state["mu_product"]
        denom = xp_of(d).sqrt(v / (1 - beta2 ** step))
        denom += group["eps"]
        d -= lr * (1.0 - mu) / (1.0 - mu_product) * (g / denom)
        d -= lr * mu_next / (1.0 - mu_product * mu_next) * (m / denom)
