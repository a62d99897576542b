"""The kernel registry: which kernel implementation runs for a device.

Each backend module exposes ``KERNELS``, a dict from kernel name to function; the names are the
same everywhere and a backend without its own version of a kernel inherits the reference one.
Backends are imported lazily, so ``import tilegrad`` needs neither the compiled modules nor CuPy.

``TILEGRAD_KERNELS=reference`` (read at import) or ``with tilegrad.kernels("reference"):``
forces the reference kernels; the parity tests run every op both ways.
"""
import contextlib
import contextvars
import os

from . import reference

_CHOICES = ("native", "reference")
_env_choice = os.environ.get("TILEGRAD_KERNELS", "native").strip().lower() or "native"
if _env_choice not in _CHOICES:
    raise ValueError(f"TILEGRAD_KERNELS={_env_choice!r}: expected one of {_CHOICES}")

_forced = contextvars.ContextVar("tilegrad_kernels", default=_env_choice)
_tables = {}  # (device type, choice) -> kernel dict; filled on first use, never changed after


def _native_table(device_type):
    if device_type == "cpu":
        from . import cpu
        return cpu.KERNELS
    from . import cuda
    return cuda.KERNELS


def kernel_table(device):
    """The dict of kernels that ops on ``device`` call, honouring the forced choice."""
    key = (device.type, _forced.get())
    table = _tables.get(key)
    if table is None:
        table = reference.KERNELS if key[1] == "reference" else _native_table(device.type)
        _tables[key] = table
    return table


@contextlib.contextmanager
def kernels(choice):
    """``with tilegrad.kernels("reference"):`` runs every op in the block on the reference
    kernels; ``"native"`` restores the backend's own kernels."""
    if choice not in _CHOICES:
        raise ValueError(f"kernels({choice!r}): expected one of {_CHOICES}")
    token = _forced.set(choice)
    try:
        yield
    finally:
        _forced.reset(token)


def current_choice():
    return _forced.get()


def native_kernel_names(device_type):
    """Names of the kernels that a backend implements itself (the rest fall back)."""
    table = _native_table(device_type)
    return sorted(n for n, fn in table.items() if fn is not reference.KERNELS.get(n))
