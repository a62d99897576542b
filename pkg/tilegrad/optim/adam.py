"""Adam and AdamW, with PyTorch's algorithm (torch.optim.Adam / AdamW):

    g = -grad if maximize else grad
    Adam:  g = g + weight_decay * p                 AdamW:  p = p * (1 - lr * weight_decay)
    t = t + 1
    m = m + (1 - beta1) * (g - m)                   (lerp towards g)
    v = beta2 * v + (1 - beta2) * g * g
    v_max = max(v_max, v)                           (amsgrad; v_max replaces v below)
    denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
    p = p - lr / (1 - beta1 ** t) * m / denom
"""
import math

from ..backends.reference import xp_of
from .optimizer import Optimizer, _check_nonneg, _cuda_stream, _fused_cuda, _lerp_, _native_cpu


class Adam(Optimizer):
    _decoupled = False  # AdamW decays the weights directly instead of adding to the gradient

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _check_group(self, group):
        _check_nonneg("learning rate", group["lr"])
        _check_nonneg("epsilon value", group["eps"])
        _check_nonneg("weight_decay value", group["weight_decay"])
        beta1, beta2 = group["betas"]
        if not 0.0 <= beta1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {beta1}")
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {beta2}")

    def _update_fused(self, group, items):
        """CuPy parameters: one multi-tensor launch per distinct step count (``_cuda.adamw_step``)."""
        if not hasattr(items[0][1], "__cuda_array_interface__"):
            return False
        for p, _, state in items:
            self._init_state(group, p, state)
        cuda = _fused_cuda(items, "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        if cuda is None:
            return False
        by_step = {}
        for item in items:
            item[2]["step"] += 1
            by_step.setdefault(item[2]["step"], []).append(item)
        (beta1, beta2), amsgrad = group["betas"], group["amsgrad"]
        for step, batch in by_step.items():
            cuda.adamw_step([p._data for p, _, _ in batch], [g for _, g, _ in batch],
                            [s["exp_avg"]._data for _, _, s in batch], [s["exp_avg_sq"]._data for _, _, s in batch],
                            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                            weight_decay=group["weight_decay"], step=step,
                            max_exp_avg_sqs=[s["max_exp_avg_sq"]._data for _, _, s in batch] if amsgrad else None,
                            decoupled=self._decoupled, maximize=group["maximize"], stream=_cuda_stream())
        return True

    def _init_state(self, group, p, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._buffer(p)
            state["exp_avg_sq"] = self._buffer(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:  # amsgrad may be switched on later
            state["max_exp_avg_sq"] = self._buffer(p)

    def _update(self, group, p, grad, state):
        d = p._data
        xp = xp_of(d)
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        self._init_state(group, p, state)
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        v_max = state["max_exp_avg_sq"]._data if group["amsgrad"] else None
        native = _native_cpu(d, grad, m, v, v_max)
        if native is not None:
            native.adam_step(d, grad, m, v, v_max, lerp_weight=1 - beta1, decay=1 - lr * wd,
                             weight_decay=0.0 if self._decoupled else wd, beta2=beta2,
                             bias2_sqrt=math.sqrt(1 - beta2 ** step), eps=group["eps"],
                             step_size=lr / (1 - beta1 ** step), decoupled=self._decoupled and wd != 0,
                             maximize=group["maximize"])
            return
        g = -grad if group["maximize"] else grad
        if wd != 0:
            if self._decoupled:
                d *= 1 - lr * wd
            else:
                g = g + wd * d
        _lerp_(m, g, 1 - beta1)
        v *= beta2
        v += (1 - beta2) * g * g  # torch's addcmul order: (value * t1) * t2
        if v_max is not None:
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        step_size = lr / (1 - beta1 ** step)
        denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** step)
        denom += group["eps"]
        d -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch's default decay is 0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
