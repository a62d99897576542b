"""Wall-clock timing: warm up, pick a loop count so one sample is long enough to read, then
take the median of repeated samples (``time.perf_counter``).

``measure_together`` times several implementations of one case with their samples
interleaved, so a burst of other work on the machine slows all of them rather than one.

On a GPU the ``sync`` callable waits for queued work, so a sample covers the kernels it
launched and not only their launch; with a ``clock`` from ``cuda_event_clock`` the sample is
read from device events recorded around the calls on the stream they run on (the host clock
would add the launch latency of the last kernel and the synchronisation itself).
"""
import contextlib
import statistics
import time
from typing import NamedTuple


class Timing(NamedTuple):
    median: float    # seconds per call, median over the samples
    best: float      # seconds per call, fastest sample
    number: int      # calls per sample
    repeats: int     # samples taken
    samples: tuple   # seconds per call of each sample, in the order taken


def _nothing():
    pass


def host_clock(sync):
    """Seconds of a block of calls by ``time.perf_counter``, after ``sync()`` drained the device."""
    def clock(block):
        sync()
        start = time.perf_counter()
        block()
        sync()
        return time.perf_counter() - start
    return clock


def cuda_event_clock(event, synchronize):
    """Seconds of a block of calls between two device events recorded on the current stream.
    ``event()`` makes a timing event: ``cupy.cuda.Event`` for tilegrad and CuPy (CuPy's current
    stream, where tilegrad launches), ``torch.cuda.Event(enable_timing=True)`` for PyTorch."""
    def clock(block):
        synchronize()
        start, stop = event(), event()
        start.record()
        block()
        stop.record()
        stop.synchronize()
        return _elapsed(start, stop) / 1e3
    return clock


def _elapsed(start, stop):
    if hasattr(start, "elapsed_time"):  # torch.cuda.Event
        return start.elapsed_time(stop)
    import cupy
    return cupy.cuda.get_elapsed_time(start, stop)


def _sample(fn, number, sync, context=contextlib.nullcontext, clock=None):
    def block():
        for _ in range(number):
            fn()
    with context():
        return (clock or host_clock(sync))(block)


def _calibrate(fn, sync, context, clock, warmup, min_time, max_number):
    with context():
        for _ in range(warmup):
            fn()
        sync()
    number = 1
    while number < max_number and _sample(fn, number, sync, context, clock) < min_time:
        number *= 2
    return number


def measure_together(calls, repeats=10, warmup=2, min_time=2e-3, max_number=1 << 20, interleave=True):
    """Seconds per call of each ``(fn, sync, context[, clock])`` in ``calls``: ``sync`` (or None)
    waits for device work, ``context`` (or None) makes the context manager every sample runs in,
    ``clock`` (or None: ``host_clock(sync)``) times a block of calls.
    Each fn runs ``number`` times per sample, ``number`` doubled from 1 until a sample takes
    at least ``min_time``; then ``repeats`` rounds take one sample of every fn in turn.

    ``interleave=False`` takes all samples of one fn before the next fn is calibrated: use it
    when the fns run on thread pools (OpenMP, BLAS) whose idle threads spin for a while after
    each parallel region and would take cores from the next pool."""
    calls = [(c[0], c[1] or _nothing, c[2] or contextlib.nullcontext, c[3] if len(c) > 3 else None) for c in calls]
    numbers = [_calibrate(*call, warmup, min_time, max_number) for call in calls] if interleave else [None] * len(calls)
    times = [[] for _ in calls]
    order = [[(i, call) for i, call in enumerate(calls)]] * max(1, repeats) if interleave \
        else [[(i, call)] * max(1, repeats) for i, call in enumerate(calls)]
    for round_ in order:
        for i, call in round_:
            if numbers[i] is None:
                numbers[i] = _calibrate(*call, warmup, min_time, max_number)
            times[i].append(_sample(call[0], numbers[i], call[1], call[2], call[3]) / numbers[i])
    return [Timing(statistics.median(t), min(t), n, len(t), tuple(t)) for t, n in zip(times, numbers)]


def paired_ratio(a, b):
    """Median over rounds of ``a``'s sample / ``b``'s sample, for two Timings taken together
    with ``interleave=True``: each round's samples are adjacent in time, so load that comes and
    goes cancels in the ratio."""
    return statistics.median(x / y for x, y in zip(a.samples, b.samples))


def measure(fn, repeats=10, sync=None, warmup=2, min_time=2e-3, max_number=1 << 20, context=None, clock=None):
    """Seconds per call of ``fn()`` (``measure_together`` of one fn)."""
    return measure_together([(fn, sync, context, clock)], repeats, warmup, min_time, max_number)[0]
