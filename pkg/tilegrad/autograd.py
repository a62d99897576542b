"""Reverse-mode automatic differentiation.

A tensor produced by an op while grad mode is on keeps a link to its graph node: the op's context
(``ctx``), which holds what the backward needs and one edge per input. ``backward()`` walks the
graph iteratively in reverse topological order, so a chain of any length never meets Python's
recursion limit. Gradients are un-broadcast to each input's shape here, in one place, and
accumulate with ``+``; the graph's saved arrays are freed after a backward unless retain_graph.
"""
import threading

import numpy as np

from .backends import kernel_table
from .backends.reference import xp_of
from .device import device_of


# ---- grad mode ----------------------------------------------------------------------------
class _State(threading.local):
    """Grad mode is per thread, as in PyTorch; a new thread starts with it on."""
    grad_enabled = True
    inference = False  # inside inference_mode()
    anomaly = False  # detect_anomaly(): check every op's outputs and gradients for NaN/Inf


_state = _State()


def is_grad_enabled():
    return _state.grad_enabled


class _GradMode:
    """Context manager and decorator that sets grad mode for its block."""

    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _state.grad_enabled = self.mode

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper

    def _fresh(self):
        """A new manager of the same mode, so nested and concurrent calls each keep their own
        previous state."""
        return type(self)()


class _BareDecorator(_GradMode):
    """Also usable as a decorator without parentheses (``@no_grad``), as in PyTorch."""

    def __new__(cls, fn=None):
        if fn is None:
            return super().__new__(cls)
        return cls()(fn)


class no_grad(_BareDecorator):  # noqa: N801 - PyTorch's name
    mode = False


class enable_grad(_BareDecorator):  # noqa: N801
    mode = True


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """``torch.inference_mode(mode=True)``: in tilegrad the same as ``no_grad`` (no graph is
    recorded); ``mode=False`` changes nothing. Tensors made inside are ordinary tensors (PyTorch
    marks them as inference tensors and refuses them in autograd later)."""

    def __new__(cls, mode=True):
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.inference = bool(mode)

    def __enter__(self):
        self._prev, self._prev_inference = _state.grad_enabled, _state.inference
        if self.inference:
            _state.grad_enabled, _state.inference = False, True

    def __exit__(self, *exc):
        _state.grad_enabled, _state.inference = self._prev, self._prev_inference

    def _fresh(self):
        return type(self)(self.inference)


def is_inference_mode_enabled():
    return _state.inference


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """``set_grad_enabled(mode)`` sets grad mode at once; used as ``with set_grad_enabled(mode):``
    it also restores the previous mode at the end of the block (PyTorch's two uses)."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _state.grad_enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        _state.grad_enabled = self._prev  # as a decorator it changes the mode only inside fn
        return super().__call__(fn)

    def _fresh(self):
        return type(self)(self.mode)


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Within this block, the first op whose forward or backward produces NaN or Inf raises a
    RuntimeError naming it. Costs a scan of every result, so it is for debugging only."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self._prev = _state.anomaly
        _state.anomaly = self.check_nan

    def __exit__(self, *exc):
        _state.anomaly = self._prev


def _check_finite(values, where, what):
    for i, v in enumerate(values):
        if isinstance(v, TensorBase):
            v = v._data
        if v is None or not hasattr(v, "dtype") or v.dtype.kind not in "fc":
            continue
        finite = xp_of(v).isfinite(v)
        if not bool(finite.all()):
            kind = "nan" if bool(xp_of(v).isnan(v).any()) else "inf"
            raise RuntimeError(f"detect_anomaly: {where} produced {kind} values in its {what} {i} "
                               f"(shape {tuple(v.shape)})")


# ---- the tensor's autograd state ----------------------------------------------------------
class TensorBase:
    """Storage plus autograd state; ``tilegrad.Tensor`` adds the user-facing methods."""

    __slots__ = ("_data", "_device", "requires_grad", "_grad", "_node", "_out_idx", "_hooks", "__weakref__")
    # The class of tensors that ops and backward produce from this one: ``Tensor`` sets itself, so
    # an op on a subclass (``nn.Parameter``) gives a plain Tensor, as in PyTorch.
    _result_type = None

    def __init__(self, data, device=None, requires_grad=False, node=None, out_idx=0):
        self._data = data
        self._device = device if device is not None else device_of(data)
        self.requires_grad = requires_grad
        self._grad = None
        self._node = node
        self._out_idx = out_idx
        self._hooks = None  # a leaf's gradient hooks (register_hook); a non-leaf's live on its node

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node


def _as_array(x):
    """Kernels may hand back NumPy scalars for 0-d results; tensors always hold arrays."""
    return np.asarray(x) if isinstance(x, np.generic) else x


# ---- functions and their contexts ---------------------------------------------------------
class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` working on
    Tensors, then call ``MyFunction.apply(*args)`` (PyTorch's ``autograd.Function``).

    ``backward`` returns one gradient per ``forward`` argument (None for non-tensors or
    inputs that need none). The op table's ops subclass ``ops.Op`` instead, whose forward and
    backward work on raw arrays for speed; both share this graph machinery.
    """

    raw_arrays = False  # True for ops: forward/backward take and return xp arrays
    differentiable = True

    # Defaults live on the class so creating a node sets only what differs (apply is the hot path).
    _saved = ()
    needs_input_grad = ()
    _edges = ()
    _n_outputs = 1
    _retained = None
    _hooks = None  # {output index: (tensor class, device, [hook, ...])}: register_hook on outputs
    _kernels = None
    same_device = True             # False for ops whose output lives elsewhere (ToDevice)
    non_differentiable_outputs = ()

    # What forward and backward use.
    def save_for_backward(self, *values):
        self._saved = values

    @property
    def saved_tensors(self):
        if self._saved is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access "
                               "saved tensors after they have already been freed). Specify "
                               "retain_graph=True on the first backward call if you need to do it again.")
        return self._saved

    def kernel(self, name, *args):
        """Run the kernel ``name`` of this op's device backend."""
        return self._kernels[name](*args)

    def mark_non_differentiable(self, *_):  # PyTorch compatibility; outputs are decided by ops
        pass

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"

    name = property(lambda self: type(self).__name__)

    @classmethod
    def apply(cls, *args):
        """Run forward on the arguments and, in grad mode, record the graph node.
        This is the hot path of every op: one pass over the arguments, no helper calls."""
        first = None
        grad = False
        arrays = []
        for a in args:
            if isinstance(a, TensorBase):
                if first is None:
                    first = a
                elif a._device is not first._device and a._device != first._device:
                    raise RuntimeError(f"{cls.__name__}: expected all tensors on the same device, "
                                       f"found {first._device} and {a._device}")
                if a.requires_grad:
                    grad = True
                arrays.append(a._data)
            else:
                arrays.append(a)
        if first is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        tensor_type = first._result_type
        device = first._device
        ctx = object.__new__(cls)
        ctx._kernels = kernel_table(device)
        record = grad and cls.differentiable and _state.grad_enabled
        if record:
            needs, edges = [], []
            for a in args:
                if isinstance(a, TensorBase) and a.requires_grad:
                    needs.append(True)
                    edges.append((a._node, a._out_idx, a if a._node is None else None, a._data.shape, a._data.dtype))
                else:
                    needs.append(False)
                    edges.append(None)
            ctx.needs_input_grad = tuple(needs)
            ctx._edges = tuple(edges)
        else:
            ctx.needs_input_grad = (False,) * len(args)
        try:
            if cls.raw_arrays:
                out = cls.forward(ctx, *arrays)
            else:
                ctx._tensor_type = tensor_type
                with no_grad():
                    out = cls.forward(ctx, *[tensor_type(a._data, a._device) if isinstance(a, TensorBase) else a
                                             for a in args])
        except ValueError as e:
            shapes = " and ".join(str(tuple(a._data.shape)) for a in args if isinstance(a, TensorBase))
            raise ValueError(f"{cls.__name__}: {e} (input shapes {shapes})") from None
        if _state.anomaly:
            _check_finite(out if type(out) is tuple else (out,), f"{cls.__name__} (forward)", "output")
        if type(out) is not tuple:  # the single-output case, inlined: it is most ops
            if type(out) is not np.ndarray:
                if isinstance(out, np.generic):
                    out = np.asarray(out)
                elif isinstance(out, TensorBase):
                    out = out._data
            t = tensor_type(out, device if cls.same_device else device_of(out))
            if record and out.dtype.kind in "fc":
                t.requires_grad = True
                t._node = ctx
            return t
        ctx._n_outputs = len(out)
        if record:
            ctx._out_meta = tuple([(_data_of(o).shape, _data_of(o).dtype) for o in out])
        return tuple([_wrap(o, ctx, i, record, tensor_type, device) for i, o in enumerate(out)])

    # The engine's view of a node.
    def _run_backward(self, grads):
        if all(g is None for g in grads):
            return (None,) * len(self._edges)
        if self._n_outputs > 1 and any(g is None for g in grads):
            like = next(g for g in grads if g is not None)
            xp = xp_of(like)
            grads = [xp.zeros(shape, dtype) if g is None else g for g, (shape, dtype) in zip(grads, self._out_meta)]
        if self.raw_arrays:
            out = type(self).backward(self, *grads)
        else:
            tt = self._tensor_type
            out = type(self).backward(self, *[tt(g) if g is not None else None for g in grads])
        if not isinstance(out, tuple):
            out = (out,)
        if not self.raw_arrays:
            out = tuple(g._data if isinstance(g, TensorBase) else g for g in out)
        return out

    def _release(self):
        """Free what forward saved; a later backward through this node that needs it fails."""
        if self._saved and any(_is_array(v) for v in self._saved):
            self._saved = None


def _data_of(o):
    return o._data if isinstance(o, TensorBase) else o


def _wrap(o, ctx, i, record, tensor_type, device):
    """An op's output array as a tensor, linked to its node when it is differentiable.
    (An edge of a node is (producer node, output index, leaf tensor or None, shape, dtype).)"""
    if isinstance(o, TensorBase):
        o = o._data
    elif isinstance(o, np.generic):
        o = np.asarray(o)
    t = tensor_type(o, device if ctx.same_device else device_of(o))
    if record and o.dtype.kind in "fc" and i not in ctx.non_differentiable_outputs:
        t.requires_grad = True
        t._node = ctx
        t._out_idx = i
    return t


def _is_array(v):
    return isinstance(v, np.ndarray) or hasattr(v, "__cuda_array_interface__") or isinstance(v, TensorBase)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the inverse of broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _accumulate_leaf(leaf, g, owned=False):
    """leaf.grad += g. A first gradient is copied unless ``owned``: the engine vouches that no
    one else holds g (a fresh array from a built-in op's backward, given to this leaf only), so
    an in-place change of one .grad can never show through another or the caller's array."""
    if leaf._grad is None:
        if not owned and hasattr(g, "copy"):
            g = g.copy()
        leaf._grad = leaf._result_type(g, leaf._device)
    else:
        leaf._grad = leaf._result_type(leaf._grad._data + g, leaf._device)


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_hook(tensor, hook):
    """``tensor.register_hook(hook)``: ``hook(grad)`` runs when the gradient of ``tensor`` has
    been computed, and may return a tensor that replaces it (None keeps it)."""
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if not callable(hook):
        raise TypeError(f"register_hook expects a callable, got {type(hook).__name__}")
    if tensor._node is None:
        if tensor._hooks is None:
            tensor._hooks = []
        hooks = tensor._hooks
    else:
        node = tensor._node
        if node._hooks is None:
            node._hooks = {}
        # The node keeps what the hooks' tensors are made of: the output's class and device.
        hooks = node._hooks.setdefault(tensor._out_idx, (tensor._result_type, tensor._device, []))[2]
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def _run_hooks(hooks, g, tensor_type, device):
    """Pass the gradient array ``g`` through the hooks, each seeing the previous one's result."""
    for hook in list(hooks):
        out = hook(tensor_type(g, device))
        if out is None:
            continue
        data = out._data if isinstance(out, TensorBase) else out
        if tuple(data.shape) != tuple(g.shape):
            raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                               f"{tuple(data.shape)}, expected {tuple(g.shape)}")
        g = data.astype(g.dtype, copy=False)
    return g


class _Capture:
    """What ``grad()`` collects instead of filling ``.grad``: the gradient of each input,
    a leaf (found on an edge) or a non-leaf (an output of a node)."""

    def __init__(self, inputs):
        self.leaves = {}  # id(leaf tensor) -> positions
        self.outputs = {}  # (node, output index) -> positions
        for pos, t in enumerate(inputs):
            if t._node is None:
                self.leaves.setdefault(id(t), []).append(pos)
            else:
                self.outputs.setdefault((t._node, t._out_idx), []).append(pos)
        self.inputs = inputs
        self.results = [None] * len(inputs)

    def add(self, positions, g):
        for pos in positions:
            self.results[pos] = g if self.results[pos] is None else self.results[pos] + g

    def needed(self, roots):
        """The nodes whose backward leads to an input: the only ones ``grad()`` has to run."""
        nodes = {node for node, _ in self.outputs}
        memo = {}
        for root in roots:
            stack = [(root, False)]
            while stack:
                node, children_done = stack.pop()
                if node in memo:
                    continue
                if not children_done:
                    stack.append((node, True))
                    stack.extend((e[0], False) for e in node._edges
                                 if e is not None and e[0] is not None and e[0] not in memo)
                    continue
                memo[node] = node in nodes or any(
                    e is not None and ((e[0] is None and id(e[2]) in self.leaves) or (e[0] is not None and memo[e[0]]))
                    for e in node._edges)
        return {node for node, keep in memo.items() if keep}


def _seed(tensors, grad_tensors, what):
    """The roots of a backward pass: [(tensor, gradient array)], checked as PyTorch does."""
    if isinstance(tensors, TensorBase):
        tensors = (tensors,)
    tensors = tuple(tensors)
    if grad_tensors is None or isinstance(grad_tensors, TensorBase):
        grad_tensors = (grad_tensors,) * len(tensors) if grad_tensors is None else (grad_tensors,)
    grad_tensors = tuple(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"{what}: got {len(grad_tensors)} gradients for {len(tensors)} tensors")
    seeds = []
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not isinstance(t, TensorBase):
            raise TypeError(f"{what}: expected Tensors, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if t._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                                   f"got a tensor of shape {tuple(t._data.shape)}: pass gradient=")
            g = xp_of(t._data).ones_like(t._data)
        else:
            g = g._data if isinstance(g, TensorBase) else g
            if tuple(g.shape) != tuple(t._data.shape):
                raise RuntimeError(f"{what}: gradient has shape {tuple(g.shape)} but the tensor has "
                                   f"shape {tuple(t._data.shape)}")
        seeds.append((t, g))
    return seeds


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Accumulate d(tensors)/d(leaves) into the leaves' ``.grad`` (``torch.autograd.backward``)."""
    grads = {}  # node -> list of accumulated output grads
    roots = []
    leaf_grads = {}
    for t, g in _seed(tensors, grad_tensors, "backward"):
        if t._node is None:
            _add_leaf_grad(leaf_grads, t, g.astype(t._data.dtype, copy=False), False)
            continue
        slot = grads.setdefault(t._node, [None] * t._node._n_outputs)
        slot[t._out_idx] = g if slot[t._out_idx] is None else slot[t._out_idx] + g
        roots.append(t._node)
    _run_graph(roots, grads, retain_graph, leaf_grads=leaf_grads)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    """``torch.autograd.grad``: the gradients of ``outputs`` with respect to ``inputs``, returned
    as a tuple instead of accumulated into ``.grad`` (no ``.grad`` changes). Only the part of
    the graph that leads to the inputs runs. Higher-order gradients (``create_graph=True``) are
    not supported: tilegrad's backward works on raw arrays and records no graph."""
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported: tilegrad's "
                                  "backward works on raw arrays and records no graph")
    single = isinstance(inputs, TensorBase)
    inputs = (inputs,) if single else tuple(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, TensorBase):
            raise TypeError(f"grad: inputs must be Tensors, got {type(t).__name__} at position {i}")
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if allow_unused is None:
        allow_unused = materialize_grads
    capture = _Capture(inputs)
    grads, roots = {}, []
    for t, g in _seed(outputs, grad_outputs, "grad"):
        if t._node is None:
            if id(t) in capture.leaves:
                capture.add(capture.leaves[id(t)], g.astype(t._data.dtype, copy=False))
            continue
        slot = grads.setdefault(t._node, [None] * t._node._n_outputs)
        slot[t._out_idx] = g if slot[t._out_idx] is None else slot[t._out_idx] + g
        roots.append(t._node)
    _run_graph(roots, grads, bool(retain_graph), capture=capture)
    results = []
    for i, (t, g) in enumerate(zip(inputs, capture.results)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad: input {i} was not used in the graph of the outputs; "
                                   f"pass allow_unused=True to get None for it")
            if materialize_grads:
                g = xp_of(t._data).zeros_like(t._data)
        elif t._node is None and t._hooks:
            g = _run_hooks(t._hooks, g, t._result_type, t._device)
        results.append(None if g is None else t._result_type(_as_array(g), t._device))
    return tuple(results)


def _add_leaf_grad(leaf_grads, leaf, g, owned):
    """Collect a leaf's gradient. A leaf with hooks waits for its total (its hooks see the sum
    over every path, as in PyTorch); others accumulate into ``.grad`` at once."""
    if leaf._hooks:
        prev = leaf_grads.get(leaf)
        leaf_grads[leaf] = g if prev is None else prev + g
    else:
        _accumulate_leaf(leaf, g, owned)


def _run_graph(roots, grads, retain_graph, leaf_grads=None, capture=None):
    """Run the backward of every node reachable from the roots in reverse topological order.
    With ``capture`` (``grad()``), gradients of the inputs are collected there, no ``.grad``
    changes, and only the nodes leading to an input run."""
    if leaf_grads is None:
        leaf_grads = {}
    needed = capture.needed(roots) if capture is not None else None
    if needed is not None:
        roots = [n for n in roots if n in needed]
    # Count, for every node reachable from the roots, how many edges lead into it.
    pending = {}
    stack = list(dict.fromkeys(roots))
    seen = set(stack)
    while stack:
        node = stack.pop()
        for e in node._edges:
            if e is not None and e[0] is not None and (needed is None or e[0] in needed):
                pending[e[0]] = pending.get(e[0], 0) + 1
                if e[0] not in seen:
                    seen.add(e[0])
                    stack.append(e[0])
    ready = [n for n in dict.fromkeys(roots) if pending.get(n, 0) == 0]
    # ids of the arrays handed on so far (the callers' root gradients count): a leaf may keep
    # its gradient array without a copy only if it is the first and only taker.
    given = {id(g) for slot in grads.values() for g in slot if g is not None}
    while ready:
        node = ready.pop()
        out_grads = grads.pop(node)
        if node._hooks:
            for i, (tensor_type, device, hooks) in node._hooks.items():
                if out_grads[i] is not None and hooks:
                    out_grads[i] = _run_hooks(hooks, out_grads[i], tensor_type, device)
        if capture is not None:
            for i, g in enumerate(out_grads):
                positions = capture.outputs.get((node, i))
                if positions and g is not None:
                    capture.add(positions, g)
        if node._retained:  # after the hooks, as PyTorch (grad() fills them too)
            for i, t in node._retained:
                if out_grads[i] is not None:
                    _accumulate_leaf(t, out_grads[i])
        in_grads = node._run_backward(out_grads)
        if _state.anomaly:
            _check_finite(in_grads, f"{type(node).__name__}Backward", "gradient")
        if len(in_grads) < len(node._edges):
            raise RuntimeError(f"{type(node).__name__}.backward returned {len(in_grads)} gradients, "
                               f"expected {len(node._edges)}")
        for e, g in zip(node._edges, in_grads):
            if e is None:
                continue
            child, idx, leaf, shape, dtype = e
            if g is not None:
                g = _as_array(g)
                g = _unbroadcast(g, shape)
                if g.dtype != dtype:
                    g = g.astype(dtype)
            if child is None:
                if g is not None:
                    if capture is not None:
                        positions = capture.leaves.get(id(leaf))
                        if positions:
                            capture.add(positions, g)
                        continue
                    # Built-in ops return fresh arrays or views of gy (which own no data);
                    # user Functions may return anything, e.g. a saved tensor.
                    owned = node.raw_arrays and getattr(g, "base", 0) is None and id(g) not in given
                    given.add(id(g))
                    _add_leaf_grad(leaf_grads, leaf, g, owned)
                continue
            if needed is not None and child not in needed:
                continue
            if g is not None:
                given.add(id(g))
            if g is not None:
                slot = grads.setdefault(child, [None] * child._n_outputs)
                slot[idx] = g if slot[idx] is None else slot[idx] + g
            else:
                grads.setdefault(child, [None] * child._n_outputs)
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
        if not retain_graph:
            node._release()
    for leaf, g in leaf_grads.items():
        _accumulate_leaf(leaf, _run_hooks(leaf._hooks, g, leaf._result_type, leaf._device))


# ---- gradient checking --------------------------------------------------------------------
def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True):
    """Check the analytical gradients of ``fn(*inputs)`` against central differences.

    ``inputs`` are tensors; those with ``requires_grad`` are checked, and should be float64.
    The outputs are contracted with a fixed random tensor ``v`` so one backward gives the
    vector-Jacobian product, compared element by element with (L(x+eps) - L(x-eps)) / 2eps
    where L = sum(fn(x) * v). Returns True, or raises (or returns False) naming the worst entry.
    """
    def contracted(vs):
        outs = fn(*inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        outs = [o for o in outs if isinstance(o, TensorBase) and o._data.dtype.kind == "f"]
        if vs is None:
            rng = np.random.default_rng(seed)
            vs = [rng.standard_normal(o._data.shape) for o in outs]
        total = 0.0
        for o, v in zip(outs, vs):
            total = total + (o * o._result_type(xp_of(o._data).asarray(v, dtype=o._data.dtype), o._device)).sum()
        return total, vs

    checked = [t for t in inputs if isinstance(t, TensorBase) and t.requires_grad]
    for t in checked:
        if t._data.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs for precision, got {t._data.dtype}")
        t._grad = None
    loss, vs = contracted(None)
    if not isinstance(loss, TensorBase) or not loss.requires_grad:
        for t in checked:
            t._grad = None
        analytical = [np.zeros(t._data.shape) for t in checked]
    else:
        loss.backward()
        analytical = [_to_numpy(t._grad._data) if t._grad is not None else np.zeros(t._data.shape) for t in checked]
    with no_grad():
        for t, ana in zip(checked, analytical):
            if not t._data.flags.c_contiguous:
                raise ValueError("gradcheck needs C-contiguous inputs (perturbed in place through a flat view)")
            flat = t._data.reshape(-1)
            num = np.zeros(flat.size)
            for i in range(flat.size):
                orig = flat[i].item()
                flat[i] = orig + eps
                plus = float(contracted(vs)[0]._data)
                flat[i] = orig - eps
                minus = float(contracted(vs)[0]._data)
                flat[i] = orig
                num[i] = (plus - minus) / (2 * eps)
            err = np.abs(num - ana.reshape(-1))
            bad = err > atol + rtol * np.abs(num)
            if bad.any():
                j = int(np.argmax(err - (atol + rtol * np.abs(num))))
                msg = (f"gradcheck failed for an input of shape {tuple(t._data.shape)}: at flat index {j}, "
                       f"numerical {num[j]:.8g} vs analytical {ana.reshape(-1)[j]:.8g} "
                       f"({int(bad.sum())} of {flat.size} entries out of tolerance)")
                if raise_exception:
                    raise AssertionError(msg)
                return False
    return True


def _to_numpy(a):
    return a if isinstance(a, np.ndarray) else a.get()
