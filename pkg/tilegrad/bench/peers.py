"""The implementations a case is timed on: tilegrad (native and reference kernels) and the peers
measured in the same run, NumPy and PyTorch on the CPU, CuPy (cuBLAS) and PyTorch on a GPU.

Each ``Impl.prepare(spec, arrays)`` copies the float32 inputs onto its device once and returns
``(call, to_host)``: ``call()`` computes the case, ``to_host(result)`` brings the result back as
a NumPy array for the correctness check. Peers are optional: PyTorch and CuPy are used when they
import, never required.
"""
import contextlib
from typing import Callable, NamedTuple, Optional

import numpy as np

import tilegrad
from tilegrad import testing

from .timing import cuda_event_clock

PEERS = ("numpy", "torch", "cupy")


class Impl(NamedTuple):
    name: str               # "tilegrad", "numpy", "torch" or "cupy"
    device: str             # "cpu" or "cuda"
    kernels: Optional[str]  # tilegrad's kernel choice ("native", "reference"); None for peers
    prepare: Callable       # (spec, arrays) -> (call, to_host)
    sync: Callable          # waits for queued device work (a no-op on the CPU)
    clock: Optional[Callable] = None  # times a block of calls (device events on a GPU); None: host clock

    @property
    def is_peer(self):
        return self.name != "tilegrad"

    def context(self):
        """The block the impl runs in: tilegrad's kernel choice; nothing for peers."""
        return tilegrad.kernels(self.kernels) if self.kernels else contextlib.nullcontext()


def _no_sync():
    pass


def optional_torch():
    """PyTorch when it imports, else None (it is a peer, never a dependency)."""
    try:
        import torch
    except Exception:  # ImportError, or a broken install
        return None
    return torch


def _tilegrad_prepare(device):
    def prepare(spec, arrays):
        # tilegrad.tensor copies: every prepared set of inputs is its own buffer
        tensors = [tilegrad.tensor(a, device=device) for a in arrays]
        return (lambda: spec.tilegrad(*tensors)), testing.to_numpy
    return prepare


def _numpy_prepare(spec, arrays):
    return (lambda: spec.array(np, *arrays)), np.asarray


def _cupy_prepare(spec, arrays):
    cp = tilegrad.cuda.require()
    xs = [cp.asarray(a) for a in arrays]
    return (lambda: spec.array(cp, *xs)), cp.asnumpy


def _torch_prepare(torch, device):
    def prepare(spec, arrays):
        ts = [torch.from_numpy(np.array(a)).to(device) for a in arrays]
        return (lambda: spec.torch(torch, *ts)), (lambda r: r.detach().cpu().numpy())
    return prepare


def _numpy_copy_prepare(spec, arrays):
    return _numpy_prepare(spec, [np.array(a) for a in arrays])


def implementations(device, peers=PEERS):
    """Every implementation that can run on ``device`` here: tilegrad's two kernel choices
    first, then the installed peers named in ``peers``. On a GPU every sample is read from device
    events on the stream the implementation launches on."""
    torch = optional_torch() if "torch" in peers else None
    if device == "cpu":
        found = [Impl("tilegrad", "cpu", "native", _tilegrad_prepare("cpu"), _no_sync),
                 Impl("tilegrad", "cpu", "reference", _tilegrad_prepare("cpu"), _no_sync)]
        if "numpy" in peers:
            found.append(Impl("numpy", "cpu", None, _numpy_copy_prepare, _no_sync))
        if torch is not None:
            found.append(Impl("torch", "cpu", None, _torch_prepare(torch, "cpu"), _no_sync))
        return found
    cp = tilegrad.cuda.require()
    sync = tilegrad.cuda.synchronize
    clock = cuda_event_clock(cp.cuda.Event, sync)
    found = [Impl("tilegrad", "cuda", "native", _tilegrad_prepare("cuda"), sync, clock),
             Impl("tilegrad", "cuda", "reference", _tilegrad_prepare("cuda"), sync, clock)]
    if "cupy" in peers:
        found.append(Impl("cupy", "cuda", None, _cupy_prepare, sync, clock))
    if torch is not None and torch.cuda.is_available():
        torch_clock = cuda_event_clock(lambda: torch.cuda.Event(enable_timing=True), torch.cuda.synchronize)
        found.append(Impl("torch", "cuda", None, _torch_prepare(torch, "cuda"), torch.cuda.synchronize, torch_clock))
    return found
