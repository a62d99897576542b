"""Stochastic gradient descent, with PyTorch's algorithm (torch.optim.SGD):

    g = -grad if maximize else grad
    g = g + weight_decay * p
    buf = g                                         (first step)
    buf = momentum * buf + (1 - dampening) * g      (later steps)
    g = g + momentum * buf if nesterov else buf     (when momentum != 0)
    p = p - lr * g
"""
from .optimizer import Optimizer, _check_nonneg, _cuda_stream, _fused_cuda, _native_cpu


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        # foreach/fused/differentiable are PyTorch's implementation choices; accepted for
        # compatibility, there is one implementation here.
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _check_group(self, group):
        _check_nonneg("learning rate", group["lr"])
        _check_nonneg("momentum value", group["momentum"])
        _check_nonneg("weight_decay value", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update_fused(self, group, items):
        """CuPy parameters: one multi-tensor launch for the parameters whose momentum buffer
        starts this step and one for the rest (``_cuda.sgd_step``)."""
        if not hasattr(items[0][1], "__cuda_array_interface__"):
            return False
        cuda = _fused_cuda(items, "momentum_buffer")
        if cuda is None:
            return False
        momentum = group["momentum"]
        first = [item for item in items if momentum != 0 and item[2].get("momentum_buffer") is None]
        later = [item for item in items if not (momentum != 0 and item[2].get("momentum_buffer") is None)]
        for p, _, state in first:
            state["momentum_buffer"] = self._buffer(p)
        for batch, first_step in ((first, True), (later, False)):
            if not batch:
                continue
            bufs = None if momentum == 0 else [s["momentum_buffer"]._data for _, _, s in batch]
            cuda.sgd_step([p._data for p, _, _ in batch], [g for _, g, _ in batch], bufs, lr=group["lr"],
                          momentum=momentum, dampening=group["dampening"], weight_decay=group["weight_decay"],
                          nesterov=group["nesterov"], maximize=group["maximize"], first_step=first_step,
                          stream=_cuda_stream())
        return True

    def _update(self, group, p, grad, state):
        d = p._data
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        first_step = momentum != 0 and buf is None
        if first_step:
            buf = state["momentum_buffer"] = self._buffer(p)
        native = _native_cpu(d, grad, None if buf is None else buf._data)
        if native is not None:
            native.sgd_step(d, grad, None if momentum == 0 else buf._data, lr=group["lr"], momentum=momentum,
                            dampening=group["dampening"], weight_decay=group["weight_decay"],
                            nesterov=group["nesterov"], maximize=group["maximize"], first_step=first_step)
            return
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * d
        if momentum != 0:
            if first_step:
                buf._data[...] = g
            else:
                b = buf._data
                b *= momentum
                b += (1 - group["dampening"]) * g
            g = g + momentum * buf._data if group["nesterov"] else buf._data
        d -= group["lr"] * g
