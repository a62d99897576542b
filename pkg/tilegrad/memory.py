"""Host memory: tilegrad's caching allocator for large NumPy buffers.

A fresh multi-megabyte NumPy array is new memory from the OS, and writing it page-faults every
4 KiB page (13-17 ms for 64 MB on a small cloud machine: more than most kernels take). On import,
tilegrad makes its host cache NumPy's data allocator (NEP 49) for the importing thread: freed
blocks of 1 MiB and more are kept, up to a limit, and reused by the next array of the same size
class, as training loops allocate the same shapes every step. Smaller arrays use malloc as before.

``TILEGRAD_HOST_CACHE_MB`` sets the limit in MiB (default 1024); ``0`` leaves NumPy's allocator
alone. The cache only changes where memory comes from, never what an array holds.
"""
import os

try:
    from tilegrad import _cpu
except ImportError:  # no compiled module: NumPy's own allocator
    _cpu = None

DEFAULT_LIMIT_MB = 1024


def _limit_mb():
    raw = os.environ.get("TILEGRAD_HOST_CACHE_MB", "").strip()
    if not raw:
        return DEFAULT_LIMIT_MB
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"TILEGRAD_HOST_CACHE_MB={raw!r}: expected a whole number of MiB (0 disables the cache)") \
            from None
    if value < 0:
        raise ValueError(f"TILEGRAD_HOST_CACHE_MB={raw!r}: expected a number >= 0")
    return value


def install():
    """Make the host cache NumPy's allocator in the current thread's context (done for the
    importing thread on ``import tilegrad``; call it in other threads that allocate large arrays).
    Returns False when the cache is disabled or the native module is missing."""
    if _cpu is None or _limit_mb() == 0:
        return False
    _cpu.host_cache_set_limit(_limit_mb() << 20)
    _cpu.host_cache_install()
    return True


def uninstall():
    """Give the current context NumPy's default allocator back (existing arrays are unaffected)."""
    if _cpu is not None:
        _cpu.host_cache_uninstall()


def host_cache_stats():
    """{'cached_bytes', 'live_bytes', 'limit_bytes', 'hits', 'misses'}; empty without the module."""
    return dict(_cpu.host_cache_stats()) if _cpu is not None else {}


def empty_host_cache():
    """Return every cached (freed) block to the system; arrays in use are untouched."""
    if _cpu is not None:
        _cpu.host_cache_release()
