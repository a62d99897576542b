"""Run the bench: every kernel case on every implementation of every device, checked against
the float64 NumPy answer before it is timed, plus the per-op overhead case. Returns the report
(a dict; its schema is described in ``tilegrad.bench``)."""
import numpy as np

import tilegrad
from tilegrad import ops
from tilegrad.backends import native_kernel_names

from . import overhead
from .cases import SIZES, SPECS, check
from .machine import machine_info
from .peers import implementations
from .timing import measure_together

SCHEMA = 1
ALL_CASES = tuple(SPECS) + ("overhead",)


def available_devices():
    return ["cpu"] + (["cuda"] if tilegrad.cuda.is_available() else [])


def _check_impl(spec, size, impl, arrays, expected):
    """(call, None) when ``impl`` computes the case correctly, else (None, what went wrong)."""
    try:
        with impl.context():
            call, to_host = impl.prepare(spec, arrays)
            out = call()
            impl.sync()
            error = check(to_host(out), expected, spec.tol(size))
    except Exception as exc:  # a crash is a failed case, reported like a wrong result
        return None, f"{type(exc).__name__}: {exc}"
    return (call, None) if error is None else (None, error)


def _kernel_step(spec, size, impls, arrays, expected, cost, repeats, min_time, interleave):
    """One case on one device: check every implementation, then time those that passed with
    their samples interleaved. Returns one record per implementation."""
    def run():
        records, timed = [], []
        for impl in impls:
            record = {"kind": "kernel", "op": spec.name, "size": spec.label(size), "device": impl.device,
                      "impl": impl.name, "kernels": impl.kernels, "mode": None,
                      "shapes": [list(a.shape) for a in arrays], "flops": float(cost.flops),
                      "bytes": float(cost.bytes)}
            if impl.kernels == "native":
                record["native_kernel"] = spec.kernel in native_kernel_names(impl.device)
            call, error = _check_impl(spec, size, impl, arrays, expected)
            if error is None:
                timed.append((record, (call, impl.sync, impl.context)))
                record.update(status="ok", error=None)
            else:
                record.update(status="FAILED", error=error, time_s=None, gflops=None, gbps=None)
            records.append(record)
        timings = measure_together([c for _, c in timed], repeats=repeats, min_time=min_time,
                                   interleave=interleave) if timed else []
        for (record, _), timing in zip(timed, timings):
            t = timing.median
            record.update(time_s=t, best_s=timing.best, number=timing.number,
                          gflops=cost.flops / t / 1e9, gbps=cost.bytes / t / 1e9)
        return records
    return run


def _kernel_plan(names, size_set, devices, repeats, min_time, seed, interleave):
    rng = np.random.default_rng(seed)
    steps = []
    impls = {d: implementations(d) for d in devices}
    for name in names:
        spec = SPECS[name]
        for size in SIZES[size_set][name]:
            arrays = spec.inputs(rng, size)
            expected = spec.array(np, *(a.astype(np.float64) for a in arrays))
            cost = ops.OPS[spec.table].cost(*arrays, *spec.params(size))
            for device in devices:
                steps.append((f"{name} {spec.label(size)} {device}",
                              _kernel_step(spec, size, impls[device], arrays, expected, cost, repeats, min_time,
                                               interleave)))
    return steps


def _add_kernel_ratios(records):
    """``ratios[peer] = tilegrad time / peer time`` for the same op, size and device."""
    peers = {}
    for r in records:
        if r["kind"] == "kernel" and r["impl"] != "tilegrad" and r["time_s"]:
            peers.setdefault((r["op"], r["size"], r["device"]), {})[r["impl"]] = r["time_s"]
    for r in records:
        if r["kind"] == "kernel" and r["impl"] == "tilegrad":
            found = peers.get((r["op"], r["size"], r["device"]), {})
            r["ratios"] = {p: r["time_s"] / t for p, t in found.items()} if r["time_s"] else {}


def run(cases=ALL_CASES, sizes="quick", devices=None, repeats=10, min_time=2e-3, seed=0, progress=None,
        interleave=False):
    """Run the bench and return the report. ``progress(i, n, label)`` is called before each step.
    ``interleave`` alternates the samples of a kernel case's implementations (see
    ``timing.measure_together``); the overhead case, single-threaded, always interleaves."""
    devices = list(devices or available_devices())
    names = [c for c in cases if c in SPECS]
    steps = _kernel_plan(names, sizes, devices, repeats, min_time, seed, interleave)
    if "overhead" in cases:
        steps += overhead.plan(repeats, min_time=min_time)
    records = []
    for i, (label, thunk) in enumerate(steps):
        if progress:
            progress(i, len(steps), label)
        records.extend(thunk())
    _add_kernel_ratios(records)
    for r in records:
        r.setdefault("ratios", {})
    return {
        "schema": SCHEMA,
        "tilegrad": tilegrad.__version__,
        "machine": machine_info(),
        "settings": {"cases": list(cases), "sizes": sizes, "devices": devices, "repeats": repeats,
                     "min_time_s": min_time, "seed": seed, "interleave": interleave},
        "failed": sum(r["status"] != "ok" for r in records),
        "cases": records,
    }
