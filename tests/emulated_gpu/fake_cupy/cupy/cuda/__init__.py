"""``cupy.cuda`` of the NumPy-backed CuPy stand-in: one device, streams that are only handles
(every operation has completed when it returns), events that read the host clock."""
import time

from .. import _Device as Device  # noqa: F401
from .. import get_default_memory_pool  # noqa: F401
from . import runtime  # noqa: F401


class Stream:
    """A stream handle. ``ptr`` is what tilegrad passes to its kernels (the emulated launches
    ignore it); ``with stream:`` makes it current as in CuPy."""

    _count = 0

    def __init__(self, null=False, non_blocking=False, ptds=False):
        if null:
            self.ptr = 0
        else:
            Stream._count += 1
            self.ptr = 0x1000 + Stream._count  # distinct non-null handles, never dereferenced
        self._previous = []

    def __enter__(self):
        self._previous.append(_current[0])
        _current[0] = self
        return self

    def __exit__(self, *exc):
        _current[0] = self._previous.pop()
        return False

    def use(self):
        _current[0] = self
        return self

    def synchronize(self):
        pass

    def done(self):
        return True

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass


Stream.null = Stream(null=True)
_current = [Stream.null]


def get_current_stream(device_id=None):
    return _current[0]


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._t = None

    def record(self, stream=None):
        self._t = time.perf_counter()

    def synchronize(self):
        pass

    def done(self):
        return True


def get_elapsed_time(start, end):
    """Milliseconds between two recorded events (host clock: the work ran synchronously)."""
    return (end._t - start._t) * 1e3
