"""Adagrad, with PyTorch's algorithm (torch.optim.Adagrad):

    g = -grad if maximize else grad
    t = t + 1
    g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s = s + g * g                                   (s starts at initial_accumulator_value)
    p = p - clr * g / (sqrt(s) + eps)
"""
from ..backends.reference import xp_of
from .optimizer import Optimizer, _check_nonneg


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))
        # PyTorch creates the state up front, so a state_dict taken before the first step has it.
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(group, p)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "state"):
            for p in self.param_groups[-1]["params"]:
                self._init_state(self.param_groups[-1], p)

    def _init_state(self, group, p):
        state = self.state.setdefault(p, {})
        if not state:
            state["step"] = 0
            state["sum"] = self._buffer(p, group["initial_accumulator_value"])

    def _check_group(self, group):
        _check_nonneg("learning rate", group["lr"])
        _check_nonneg("lr_decay value", group["lr_decay"])
        _check_nonneg("weight_decay value", group["weight_decay"])
        _check_nonneg("initial_accumulator_value value", group["initial_accumulator_value"])
        _check_nonneg("epsilon value", group["eps"])

    def _update(self, group, p, grad, state):
        d = p._data
        xp = xp_of(d)
        if not state:
            self._init_state(group, p)
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * d
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]._data
        s += g * g  # torch: addcmul with value 1
        std = xp.sqrt(s)
        std += group["eps"]
        d -= clr * (g / std)
