"""Per-op Python overhead: microseconds per op on 4x4 float32 tensors, where the arithmetic is
negligible and what is left is dispatch, dtype/device checks and autograd bookkeeping.

Each op runs with autograd recording (inputs require grad, grad mode on) and without
(``no_grad``), on tilegrad and, in the same run, on PyTorch; NumPy on plain arrays is the floor.
The ratio tilegrad / PyTorch is the figure of merit (goal: at most 1.5x); it is the median of
per-round ratios of samples taken next to each other, steadier than a ratio of medians on a
machine where other work comes and goes.
"""
import contextlib

import numpy as np

import tilegrad
from tilegrad import testing

from .cases import check
from .peers import optional_torch
from .timing import measure_together, paired_ratio

SHAPE = (4, 4)
GOAL = 1.5

# name -> (tilegrad/torch call on two tensors, NumPy call on two arrays)
OPS = {
    "add": (lambda a, b: a + b, np.add),
    "mul": (lambda a, b: a * b, np.multiply),
    "relu": (lambda a, b: a.relu(), lambda a, b: np.maximum(a, a.dtype.type(0))),
}
MODES = ("grad", "no_grad")


def _recorded(out):
    return bool(out.requires_grad and out.grad_fn is not None)


def _variants(name, a, b, torch):
    """(impl, mode, call, to_host, context factory) for every way the op ``name`` is timed."""
    call, np_call = OPS[name]
    tg_in = [tilegrad.tensor(x, requires_grad=True) for x in (a, b)]
    found = [("tilegrad", "grad", lambda: call(*tg_in), testing.to_numpy, None),
             ("tilegrad", "no_grad", lambda: call(*tg_in), testing.to_numpy, tilegrad.no_grad)]
    if torch is not None:
        t_in = [torch.from_numpy(x.copy()).requires_grad_(True) for x in (a, b)]
        to_host = lambda o: o.detach().numpy()  # noqa: E731
        found += [("torch", "grad", lambda: call(*t_in), to_host, None),
                  ("torch", "no_grad", lambda: call(*t_in), to_host, torch.no_grad)]
    found.append(("numpy", None, lambda: np_call(a, b), np.asarray, None))
    return found


def _check(call, to_host, context, mode, expected):
    """None when the op computes the right values and records autograd as its mode says."""
    try:
        with (context or contextlib.nullcontext)():
            out = call()
            error = check(to_host(out), expected, (1e-5, 1e-6))
            if error is None and mode is not None and _recorded(out) != (mode == "grad"):
                error = f"autograd recording is {_recorded(out)} in mode {mode}"
    except Exception as exc:  # a crash is a failed case, reported like a wrong result
        error = f"{type(exc).__name__}: {exc}"
    return error


def _step(name, a, b, torch, repeats, min_time):
    """Check, then time with interleaved samples, every variant of one op."""
    def run():
        expected = OPS[name][1](a.astype(np.float64), b.astype(np.float64))
        records, timed = [], []
        for impl, mode, call, to_host, context in _variants(name, a, b, torch):
            record = {"kind": "overhead", "op": name, "size": "x".join(map(str, SHAPE)), "device": "cpu",
                      "impl": impl, "kernels": "native" if impl == "tilegrad" else None, "mode": mode,
                      "dtype": "float32"}
            error = _check(call, to_host, context, mode, expected)
            if error is None:
                record.update(status="ok", error=None)
                timed.append((record, (call, None, context)))
            else:
                record.update(status="FAILED", error=error, time_s=None)
            records.append(record)
        timings = measure_together([c for _, c in timed], repeats=repeats, min_time=min_time) if timed else []
        for (record, _), timing in zip(timed, timings):
            record.update(time_s=timing.median, best_s=timing.best, number=timing.number)
            record["_timing"] = timing
        _paired_ratios(records)
        return records
    return run


def _paired_ratios(records):
    """``ratios[peer]`` of each tilegrad record: the median over rounds of tilegrad's sample
    over the peer's sample taken next to it (``timing.paired_ratio``)."""
    timings = {(r["impl"], r["mode"]): r.pop("_timing") for r in records if "_timing" in r}
    for r in records:
        if r["impl"] != "tilegrad":
            continue
        r["ratios"] = {}
        mine = timings.get(("tilegrad", r["mode"]))
        for peer, peer_mode in (("torch", r["mode"]), ("numpy", None)):
            other = timings.get((peer, peer_mode))
            if mine and other:
                r["ratios"][peer] = paired_ratio(mine, other)


def plan(repeats, min_time=2e-3, peers=("numpy", "torch")):
    """(label, thunk) pairs, one per op; each thunk returns the op's case records (see
    ``tilegrad.bench``). PyTorch is timed when it is installed and in ``peers``; the NumPy floor
    always."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(SHAPE, dtype=np.float32)
    b = rng.standard_normal(SHAPE, dtype=np.float32)
    torch = optional_torch() if "torch" in peers else None
    rounds = 3 * repeats  # short samples, many rounds: the paired ratios shrug off bursts of load
    return [(f"overhead {name}", _step(name, a, b, torch, rounds, min_time)) for name in OPS]
