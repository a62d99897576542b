"""Per-op Python overhead: microseconds per op on 4x4 float32 tensors, where the arithmetic is
negligible and what is left is dispatch, dtype/device checks and autograd bookkeeping.

Each op runs with autograd recording (inputs require grad, grad mode on) and without
(``no_grad``), on tilegrad and, in the same run, on PyTorch; NumPy on plain arrays is the floor.
The ratio tilegrad / PyTorch is the figure of merit (goal: at most 1.5x).
"""
import contextlib

import numpy as np

import tilegrad
from tilegrad import testing

from .cases import check
from .peers import optional_torch
from .timing import measure

SHAPE = (4, 4)
GOAL = 1.5

# name -> (tilegrad/torch call on two tensors, NumPy call on two arrays)
OPS = {
    "add": (lambda a, b: a + b, np.add),
    "mul": (lambda a, b: a * b, np.multiply),
    "relu": (lambda a, b: a.relu(), lambda a, b: np.maximum(a, a.dtype.type(0))),
}
MODES = ("grad", "no_grad")


def _grad_mode(impl, mode, torch):
    if mode == "grad":
        return contextlib.nullcontext()
    if impl == "torch":
        return torch.no_grad()
    return tilegrad.no_grad()


def _recording_error(out, mode, recorded):
    """None when ``out`` was (or was not) recorded as the mode says."""
    if recorded(out) != (mode == "grad"):
        return f"autograd recording is {recorded(out)} in mode {mode}"
    return None


def plan(repeats, min_time=5e-3):
    """(label, thunk) pairs; each thunk returns one case record (see ``tilegrad.bench``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(SHAPE, dtype=np.float32)
    b = rng.standard_normal(SHAPE, dtype=np.float32)
    torch = optional_torch()
    steps = []
    for name, (call, np_call) in OPS.items():
        expected = np_call(a.astype(np.float64), b.astype(np.float64))
        for mode in MODES:
            tg_in = [tilegrad.tensor(x, requires_grad=True) for x in (a, b)]
            steps.append((f"overhead {name} {mode} tilegrad",
                          _thunk(name, mode, "tilegrad", lambda t=tg_in, c=call: c(*t), testing.to_numpy,
                                 lambda o: o.requires_grad and o.grad_fn is not None, expected, repeats, min_time,
                                 _grad_mode("tilegrad", mode, torch))))
            if torch is not None:
                t_in = [torch.from_numpy(x.copy()).requires_grad_(True) for x in (a, b)]
                steps.append((f"overhead {name} {mode} torch",
                              _thunk(name, mode, "torch", lambda t=t_in, c=call: c(*t), lambda o: o.detach().numpy(),
                                     lambda o: o.requires_grad and o.grad_fn is not None, expected, repeats,
                                     min_time, _grad_mode("torch", mode, torch))))
        steps.append((f"overhead {name} numpy",
                       _thunk(name, None, "numpy", lambda c=np_call: c(a, b), np.asarray, None, expected, repeats,
                              min_time, contextlib.nullcontext())))
    return steps


def _thunk(name, mode, impl, call, to_host, recorded, expected, repeats, min_time, context):
    def run():
        record = {"kind": "overhead", "op": name, "size": "x".join(map(str, SHAPE)), "device": "cpu",
                  "impl": impl, "kernels": "native" if impl == "tilegrad" else None, "mode": mode}
        try:
            with context:
                out = call()
                error = check(to_host(out), expected, (1e-5, 1e-6))
                if error is None and recorded is not None:
                    error = _recording_error(out, mode, recorded)
                if error is None:
                    timing = measure(call, repeats=repeats, min_time=min_time)
        except Exception as exc:  # a crash is a failed case, reported like a wrong result
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            record.update(status="FAILED", error=error, time_s=None)
        else:
            record.update(status="ok", error=None, time_s=timing.median, number=timing.number)
        return record
    return run


def add_ratios(records):
    """Give each tilegrad overhead record ``ratios = {"torch": tilegrad time / torch time}`` for
    the same op and mode, and ``{"numpy": ...}`` against the NumPy floor."""
    by_key = {(r["op"], r["mode"], r["impl"]): r for r in records if r["kind"] == "overhead"}
    for (name, mode, impl), r in by_key.items():
        if impl != "tilegrad":
            continue
        r["ratios"] = {}
        for peer, peer_mode in (("torch", mode), ("numpy", None)):
            other = by_key.get((name, peer_mode, peer))
            if other and r["time_s"] and other["time_s"]:
                r["ratios"][peer] = r["time_s"] / other["time_s"]
