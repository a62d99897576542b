"""Wall-clock timing: warm up, pick a loop count so one sample is long enough to read, then
take the median of repeated samples (``time.perf_counter``).

On a GPU the ``sync`` callable waits for queued work, so a sample covers the kernels it
launched and not only their launch.
"""
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


def _sample(fn, number, sync):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return time.perf_counter() - start


def measure(fn, repeats=10, sync=None, warmup=2, min_time=2e-3, max_number=1 << 20):
    """Seconds per call of ``fn()``. Each of ``repeats`` samples runs ``fn`` ``number`` times,
    with ``number`` doubled from 1 until a sample takes at least ``min_time`` seconds."""
    sync = sync or _nothing
    for _ in range(warmup):
        fn()
    sync()
    number = 1
    while number < max_number and _sample(fn, number, sync) < min_time:
        number *= 2
    times = [_sample(fn, number, sync) / number for _ in range(max(1, repeats))]
    return Timing(statistics.median(times), min(times), number, len(times))
