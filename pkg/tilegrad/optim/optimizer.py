"""``Optimizer``: parameter groups, per-parameter state and PyTorch's state-dict layout.

Subclasses implement ``_update(group, p, grad, state)`` on raw arrays (NumPy on the CPU, CuPy on a
GPU): the base class walks the groups, skips parameters without a gradient and runs everything
under ``no_grad``. Updates write into the parameter's storage, so views and aliases of a parameter
see the new values, as in PyTorch.
"""
import copy
import functools
import numbers

import numpy as np

from ..autograd import no_grad
from ..backends import current_choice
from ..backends.reference import xp_of
from ..tensor import Tensor


class _RequiredParameter:
    """Marks a hyper-parameter that has no default and must be given per group."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers.

    ``params`` is an iterable of tensors or of dicts (parameter groups) with a ``"params"`` entry
    and any per-group options; options a group does not set come from ``defaults``.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}  # tensor -> dict; tensors hash by identity, as in PyTorch
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"

    # ---- groups --------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with ``"params"`` and optional options)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs; use a list instead")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter more than once")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate a group's options (subclasses raise ValueError for out-of-range values)."""

    # ---- gradients and steps -------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Reset the gradients: drop them (the default, as in PyTorch) or fill them with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure`` (re-evaluates the model
        and returns the loss) runs first, with grad mode on; its loss is returned."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                items = []
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad._data
                    if grad.dtype != p._data.dtype:
                        raise TypeError(f"{type(self).__name__}: the gradient's dtype {p.grad.dtype} differs from "
                                        f"the parameter's {p.dtype}")
                    items.append((p, grad, self.state.setdefault(p, {})))
                if items and self._update_fused(group, items):
                    continue
                for p, grad, state in items:
                    self._update(group, p, grad, state)
        return loss

    def _update(self, group, p, grad, state):
        raise NotImplementedError

    def _update_fused(self, group, items):
        """Update every (param, grad, state) of a group at once and return True, or return False
        to have ``_update`` run per parameter. The GPU optimizers use it for one multi-tensor launch."""
        return False

    @staticmethod
    def _buffer(p, fill=0.0):
        """A state tensor shaped like ``p`` on its device, filled with ``fill``."""
        xp = xp_of(p._data)
        return Tensor(xp.full(p._data.shape, fill, dtype=p._data.dtype), p.device)

    # ---- state dicts ---------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``: the
        parameters are numbered in group order, as in PyTorch. State tensors are references;
        ``tilegrad.save`` copies them out."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index and s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``: the groups must have the same sizes; state tensors are
        copied onto each parameter's device (floating ones cast to its dtype)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"loaded state dict's parameter group {i} has {len(saved['params'])} parameters, "
                                 f"the optimizer's has {len(own['params'])}")
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            by_index.update(zip(saved["params"], own["params"]))
        state = {}
        for key, values in state_dict["state"].items():
            key = int(key)
            if key not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {key}, which no parameter group lists")
            p = by_index[key]
            state[p] = {name: self._restore(p, name, value) for name, value in values.items()}
        self.state = state
        new_groups = []
        for saved, own in zip(groups, self.param_groups):
            group = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            if isinstance(own.get("betas"), tuple) and isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])  # a JSON round trip turns tuples into lists
            group["params"] = own["params"]
            new_groups.append(group)
        self.param_groups = new_groups

    @staticmethod
    def _restore(p, name, value):
        if name == "step":
            return int(value.item()) if isinstance(value, Tensor) else int(value)
        if isinstance(value, Tensor):
            out = value.detach().to(p.device)
            if out.is_floating_point() and out.dtype != p.dtype:
                out = out.to(p.dtype)
            if out._data is value._data:  # never alias the caller's tensors
                out = out.clone()
            if out.shape != p.shape:
                raise ValueError(f"state {name!r} has shape {out.shape} but its parameter has shape {p.shape}")
            return out.detach()
        return copy.deepcopy(value)


@functools.cache
def _compiled(device_type):
    """tilegrad._cpu or tilegrad._cuda (None where not built), imported on first use: the
    backends load their compiled modules lazily, and this runs per parameter per step."""
    if device_type == "cpu":
        from ..backends.cpu import _cpu
        return _cpu
    from ..backends.cuda import _cuda
    return _cuda


def _native_cpu(*arrays):
    """tilegrad._cpu when every array (None skipped) is a float32 C-contiguous NumPy array and the
    native kernels are chosen, else None: the optimizers' one-pass steps, which give the same bits
    as the array code below."""
    _cpu = _compiled("cpu")
    if _cpu is None or current_choice() != "native":
        return None
    for a in arrays:
        if a is not None and (type(a) is not np.ndarray or a.dtype != np.float32 or not a.flags.c_contiguous):
            return None
    return _cpu


def _fused_cuda(items, *state_names):
    """tilegrad._cuda when every parameter, gradient and named state array of ``items`` is a
    float32 C-contiguous CuPy array and the native kernels are chosen, else None."""
    _cuda = _compiled("cuda")
    if _cuda is None or current_choice() != "native":
        return None
    for p, grad, state in items:
        arrays = [p._data, grad] + [state[n]._data for n in state_names if state.get(n) is not None]
        for a in arrays:
            if not hasattr(a, "__cuda_array_interface__") or a.dtype != np.float32 or not a.flags.c_contiguous:
                return None
    return _cuda


def _cuda_stream():
    import cupy
    return cupy.cuda.get_current_stream().ptr


def _lerp_(a, end, weight):
    """``a.lerp_(end, weight)`` with PyTorch's two formulas (each exact at its own end), so the
    rounding matches torch.optim step for step."""
    if abs(weight) < 0.5:
        a += weight * (end - a)
    else:
        a[...] = end - (end - a) * (1 - weight)


def _adam_moments(opt, group, p, grad, state):
    """What NAdam and RAdam share with Adam (PyTorch's order): the state on first use, maximize,
    the step count, weight decay (decoupled on the parameter, or L2 on the gradient) and the
    first and second moment updates. Returns (gradient used, exp_avg, exp_avg_sq) as arrays."""
    d = p._data
    if not state:
        state["step"] = 0
        state["exp_avg"] = opt._buffer(p)
        state["exp_avg_sq"] = opt._buffer(p)
    lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
    g = -grad if group["maximize"] else grad
    state["step"] += 1
    if wd != 0:
        if group.get("decoupled_weight_decay"):
            d *= 1 - lr * wd
        else:
            g = g + wd * d
    m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
    _lerp_(m, g, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * g * g
    return g, m, v


def _check_nonneg(name, value):
    """PyTorch's range checks: ``Invalid learning rate: -1`` and kin."""
    if not isinstance(value, numbers.Real) or value < 0.0:
        raise ValueError(f"Invalid {name}: {value}")
