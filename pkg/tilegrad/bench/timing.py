"""Wall-clock timing: warm up, pick a loop count so one sample is long enough to read, then
take the median of repeated samples (``time.perf_counter``).

``measure_together`` times several implementations of one case with their samples
interleaved, so a burst of other work on the machine slows all of them rather than one.

On a GPU the ``sync`` callable waits for queued work, so a sample covers the kernels it
launched and not only their launch.
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


def _nothing():
    pass


def _sample(fn, number, sync, context=contextlib.nullcontext):
    with context():
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return time.perf_counter() - start


def _calibrate(fn, sync, context, warmup, min_time, max_number):
    with context():
        for _ in range(warmup):
            fn()
        sync()
    number = 1
    while number < max_number and _sample(fn, number, sync, context) < min_time:
        number *= 2
    return number


def measure_together(calls, repeats=10, warmup=2, min_time=2e-3, max_number=1 << 20):
    """Seconds per call of each ``(fn, sync, context)`` in ``calls``: ``sync`` (or None) waits
    for device work, ``context`` (or None) makes the context manager every sample runs in.
    Each fn runs ``number`` times per sample, ``number`` doubled from 1 until a sample takes
    at least ``min_time``; then ``repeats`` rounds take one sample of every fn in turn."""
    calls = [(fn, sync or _nothing, context or contextlib.nullcontext) for fn, sync, context in calls]
    numbers = [_calibrate(*call, warmup, min_time, max_number) for call in calls]
    times = [[] for _ in calls]
    for _ in range(max(1, repeats)):
        for call, number, out in zip(calls, numbers, times):
            out.append(_sample(call[0], number, call[1], call[2]) / number)
    return [Timing(statistics.median(t), min(t), n, len(t)) for t, n in zip(times, numbers)]


def measure(fn, repeats=10, sync=None, warmup=2, min_time=2e-3, max_number=1 << 20, context=None):
    """Seconds per call of ``fn()`` (``measure_together`` of one fn)."""
    return measure_together([(fn, sync, context)], repeats, warmup, min_time, max_number)[0]
