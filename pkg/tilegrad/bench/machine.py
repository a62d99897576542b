"""What the bench ran on: CPU model and cores, library versions, native modules, GPU."""
import os
import platform

import numpy as np

import tilegrad
from tilegrad.backends import cpu as cpu_backend

from .peers import optional_torch


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def _cuda_info():
    if not tilegrad.cuda.is_available():
        return None
    from tilegrad.backends import cuda as cuda_backend
    cp = tilegrad.cuda.require()
    return {"name": tilegrad.cuda.get_device_name(0), "count": tilegrad.cuda.device_count(),
            "cupy": cp.__version__, "native": cuda_backend.info()}


THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TILEGRAD_KERNELS")


def machine_info():
    torch = optional_torch()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,  # other work competing
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "native_cpu": cpu_backend.info(),
        "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "cuda": _cuda_info(),
    }
