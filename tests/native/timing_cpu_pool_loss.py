"""Timing of max/avg pooling and the fused cross-entropy through the tensor API (forward, and a
forward and backward step) against PyTorch CPU, in one process. Not a test (pytest does not
collect it); the project's bench (``tilegrad bench --ops max_pool2d,avg_pool2d,cross_entropy``)
is the reference measurement.

    OMP_NUM_THREADS=1 python tests/native/timing_cpu_pool_loss.py [--repeats 7] [--clock cpu|wall]

``--clock cpu`` (the default) reads ``time.process_time``: the CPU time of this process, which a
busy machine does not inflate by descheduling it (but which counts every thread, so compare one
thread with one thread). ``--clock wall`` reads ``time.perf_counter``. Each line prints the
median per call and torch / tilegrad (above 1: tilegrad is faster). PyTorch gets as many threads
as OpenMP.
"""
import argparse
import os
import statistics
import time

import numpy as np
import torch

import tilegrad as tg
import tilegrad.nn.functional as F
from tilegrad.backends import cpu as cpu_backend

POOLS = [((32, 64, 56, 56), 3, 2, 1), ((64, 32, 28, 28), 2, 2, 0)]
LOSSES = [(4096, 1000), (128, 10)]


def median_time(fn, repeats, clock):
    fn()
    fn()
    start = clock()
    fn()
    number = max(1, int(0.2 / max(clock() - start, 1e-6)))  # about 0.2 s per sample
    samples = []
    for _ in range(repeats):
        start = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - start) / number)
    return statistics.median(samples)


def step(functional, x, *args, grad=None):
    """A forward and backward through ``functional`` (x is a leaf that requires grad)."""
    def run():
        x.grad = None
        y = functional(x, *args)
        y.backward(grad) if grad is not None else y.backward()
    return run


def pool_cases(rng, shape, k, s, p):
    x = rng.standard_normal(shape, dtype=np.float32)
    ours, theirs = tg.tensor(x), torch.from_numpy(x.copy())
    ours_leaf, theirs_leaf = tg.tensor(x, requires_grad=True), torch.from_numpy(x.copy()).requires_grad_()
    label = f"{'x'.join(map(str, shape))} k{k}s{s}p{p}"
    out = []
    for name in ("max_pool2d", "avg_pool2d"):
        ours_fn, theirs_fn = getattr(F, name), getattr(torch.nn.functional, name)
        out.append((f"{name} forward {label}", lambda f=ours_fn: f(ours, k, s, p),
                    lambda f=theirs_fn: f(theirs, k, s, p)))
        g = rng.standard_normal(theirs_fn(theirs, k, s, p).shape, dtype=np.float32)
        out.append((f"{name} forward+backward {label}",
                    step(lambda t, f=ours_fn: f(t, k, s, p), ours_leaf, grad=tg.tensor(g)),
                    step(lambda t, f=theirs_fn: f(t, k, s, p), theirs_leaf, grad=torch.from_numpy(g))))
    return out


def loss_cases(rng, rows, classes):
    x = rng.standard_normal((rows, classes), dtype=np.float32)
    t = rng.integers(0, classes, rows)
    ours_x, ours_t = tg.tensor(x), tg.tensor(t)
    theirs_x, theirs_t = torch.from_numpy(x.copy()), torch.from_numpy(t)
    label = f"{rows}x{classes}"
    return [(f"cross_entropy forward {label}", lambda: F.cross_entropy(ours_x, ours_t),
             lambda: torch.nn.functional.cross_entropy(theirs_x, theirs_t)),
            (f"cross_entropy forward+backward {label}",
             step(lambda v: F.cross_entropy(v, ours_t), tg.tensor(x, requires_grad=True)),
             step(lambda v: torch.nn.functional.cross_entropy(v, theirs_t), theirs_x.clone().requires_grad_()))]


def cases(rng):
    """(label, tilegrad callable, torch callable); each case's closures bind its own arrays."""
    out = []
    for shape, k, s, p in POOLS:
        out += pool_cases(rng, shape, k, s, p)
    for rows, classes in LOSSES:
        out += loss_cases(rng, rows, classes)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"tilegrad._cpu {cpu_backend.info()}; torch {torch.__version__} ({threads} threads); "
          f"{args.clock} clock, median of {args.repeats}")
    for label, ours, theirs in cases(np.random.default_rng(0)):
        a, b = median_time(ours, args.repeats, clock), median_time(theirs, args.repeats, clock)
        print(f"{label:44s} tilegrad {a * 1e3:9.3f} ms   torch {b * 1e3:9.3f} ms   torch/tilegrad {b / a:5.2f}")


if __name__ == "__main__":
    main()
