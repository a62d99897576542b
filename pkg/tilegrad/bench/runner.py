"""Run the bench: measure the peaks of each device, then every kernel case on every
implementation of every device and dtype, checked against the float64 NumPy answer before it is
timed, then the host-device transfers (for the crossover), the per-op overhead and a training step of
each model. Returns the
report (a dict; its schema is described in ``tilegrad.bench``)."""
import datetime
import itertools
import math
import time

import numpy as np

import tilegrad
from tilegrad import ops
from tilegrad.backends import native_kernel_names

from . import models, overhead, roofline
from .cases import SPECS, at_size, check, sizes_for
from .machine import machine_info
from .peaks import cache_bytes, measure_peaks
from .peers import PEERS, implementations
from .timing import measure, measure_together

SCHEMA = 2
ALL_CASES = tuple(SPECS) + ("overhead", "models")
MAX_ROTATE = 16


def available_devices():
    return ["cpu"] + (["cuda"] if tilegrad.cuda.is_available() else [])


def rotate_count(nbytes, device):
    """How many copies of a case's inputs the timed calls cycle through, so that together they
    span twice the device's last-level cache (at most ``MAX_ROTATE``): a call then reads inputs
    that the previous calls have not just pulled into the cache."""
    if nbytes <= 0:
        return 1
    return max(1, min(MAX_ROTATE, math.ceil(2 * cache_bytes(device) / nbytes)))


def _rotating(calls):
    if len(calls) == 1:
        return calls[0]
    cycle = itertools.cycle(calls)
    return lambda: next(cycle)()


def _check_impl(spec, size, dtype, impl, input_sets, expected):
    """(call cycling over the input sets, None) when ``impl`` computes the case correctly on the
    first set, else (None, what went wrong)."""
    try:
        with impl.context():
            call, to_host = impl.prepare(spec, input_sets[0])
            out = call()
            impl.sync()
            error = check(to_host(out), expected, spec.tol(size, dtype))
            if error is None:
                call = _rotating([call] + [impl.prepare(spec, arrays)[0] for arrays in input_sets[1:]])
    except Exception as exc:  # a crash is a failed case, reported like a wrong result
        return None, f"{type(exc).__name__}: {exc}"
    return (call, None) if error is None else (None, error)


def _kernel_step(spec, size, dtype, impls, arrays, expected, cost, repeats, min_time, interleave):
    """One case on one device: check every implementation, then time those that passed.
    Returns one record per implementation."""
    def run():
        device = impls[0].device
        copies = rotate_count(sum(a.nbytes for a in arrays), device)
        input_sets = [arrays] + [[a.copy() for a in arrays] for _ in range(copies - 1)]
        records, timed = [], []
        for impl in impls:
            record = {"kind": "kernel", "op": spec.name, "size": spec.label(size), "dtype": dtype,
                      "device": impl.device, "impl": impl.name, "kernels": impl.kernels, "mode": None,
                      "shapes": [list(a.shape) for a in arrays], "flops": float(cost.flops),
                      "bytes": float(cost.bytes), "rotate": copies,
                      "cache_resident": copies * sum(a.nbytes for a in arrays) < 2 * cache_bytes(device)}
            if impl.kernels == "native":
                record["native_kernel"] = spec.kernel in native_kernel_names(impl.device)
            call, error = _check_impl(spec, size, dtype, impl, input_sets, expected)
            if error is None:
                timed.append((record, (call, impl.sync, impl.context, impl.clock)))
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


def _transfer_step(spec, size, dtype, arrays, expected, transfers, repeats):
    """Seconds to move a case's inputs to the GPU and its result back through tilegrad
    (pageable host memory, as a user's NumPy arrays are): the price of moving work to the GPU."""
    def run():
        out = tilegrad.tensor(np.zeros(expected.shape, dtype), device="cuda")

        def move():
            for a in arrays:
                tilegrad.tensor(a, device="cuda")
            out.cpu()
        transfers[(spec.name, spec.label(size), dtype)] = measure(
            move, repeats=max(3, repeats // 2), sync=tilegrad.cuda.synchronize).median
        return []
    return run


def _kernel_plan(names, size_set, devices, dtypes, peers, repeats, min_time, seed, interleave, transfers):
    rng = np.random.default_rng(seed)
    steps = []
    impls = {d: implementations(d, peers) for d in devices}
    for name in names:
        for size in sizes_for(name, size_set):
            spec = at_size(SPECS[name], size)
            base = spec.inputs(rng, size)
            for dtype in dtypes:
                arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in base]  # indices stay ints
                expected = spec.array(np, *(a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays))
                cost = (spec.cost or ops.OPS[spec.table].cost)(*arrays, *spec.params(size))
                for device in devices:
                    steps.append((f"{name} {spec.label(size)} {dtype} {device}",
                                  _kernel_step(spec, size, dtype, impls[device], arrays, expected, cost, repeats,
                                               min_time, interleave)))
                if "cpu" in devices and "cuda" in devices:
                    steps.append((f"{name} {spec.label(size)} {dtype} transfer",
                                  _transfer_step(spec, size, dtype, arrays, np.asarray(expected), transfers, repeats)))
    return steps


def _peaks_step(device, dtypes, peaks):
    def run():
        peaks[device] = measure_peaks(device, dtypes)
        return []
    return run


def run(cases=ALL_CASES, sizes="quick", devices=None, dtypes=("float32",), peers=PEERS, repeats=10, min_time=2e-3,
        seed=0, progress=None, interleave=False, peaks=None):
    """Run the bench and return the report. ``sizes`` is "tiny", "quick", "full" or a list of N
    (see ``cases.sizes_for``). ``progress(i, n, label)`` is called before each step.
    ``interleave`` alternates the samples of a kernel case's implementations (see
    ``timing.measure_together``); the overhead case, single-threaded, always interleaves.
    ``peaks`` (a dict as ``peaks.measure_peaks`` returns, per device) skips measuring them."""
    devices = list(devices or available_devices())
    dtypes = list(dtypes)
    names = [c for c in cases if c in SPECS]
    measured = dict(peaks or {})
    transfers = {}
    steps = [(f"peaks {d}", _peaks_step(d, dtypes, measured)) for d in devices if names and d not in measured]
    steps += _kernel_plan(names, sizes, devices, dtypes, peers, repeats, min_time, seed, interleave, transfers)
    if "overhead" in cases:
        steps += overhead.plan(repeats, min_time=min_time, peers=peers)
    if "models" in cases:
        steps += models.plan(devices, peers, min(repeats, 5), min_time)
    records = []
    start = time.perf_counter()
    for i, (label, thunk) in enumerate(steps):
        if progress:
            progress(i, len(steps), label)
        records.extend(thunk())
    roofline.add_roofline(records, measured)
    roofline.add_ratios(records)
    for r in records:
        r.setdefault("ratios", {})
        r.setdefault("dtype", "float32")
    return {
        "schema": SCHEMA,
        "tilegrad": tilegrad.__version__,
        "date": datetime.date.today().isoformat(),
        "duration_s": time.perf_counter() - start,
        "machine": machine_info(),
        "settings": {"cases": list(cases), "sizes": sizes if isinstance(sizes, str) else list(sizes),
                     "devices": devices, "dtypes": dtypes, "peers": list(peers), "repeats": repeats,
                     "min_time_s": min_time, "seed": seed, "interleave": interleave},
        "peaks": {d: measured[d] for d in devices if d in measured},
        "failed": sum(r["status"] != "ok" for r in records),
        "cases": records,
        "crossover": roofline.crossover(records, transfers),
    }
