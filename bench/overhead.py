"""Where the per-op overhead of a small op goes: the layers under ``a + b`` and ``a.relu()`` on
4x4 float32 tensors, timed one on top of the other, with and without autograd recording.

    python bench/overhead.py            # after `pip install .` (or PYTHONPATH=pkg)

Each line is the best of 7 runs of 100k calls, in microseconds per call. The difference between
consecutive lines is what that layer adds. ``tilegrad bench --ops overhead`` gives the headline
figures against PyTorch; this script explains them.
"""
import timeit

import numpy as np

import tilegrad as tg
from tilegrad.backends import kernel_table
from tilegrad.ops.activation import Relu
from tilegrad.ops.elementwise import Add
from tilegrad.tensor import Tensor


def best_us(fn, number=100_000, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main():
    a = tg.randn(4, 4, requires_grad=True)
    b = tg.randn(4, 4, requires_grad=True)
    x, y, device = a._data, b._data, a.device
    table = kernel_table(device)

    def with_ctx(cls):
        ctx = object.__new__(cls)
        ctx._kernels = kernel_table(device)
        ctx.needs_input_grad = (False, False)
        return ctx

    layers = [
        ("numpy ufunc  np.add(x, y)", lambda: np.add(x, y)),
        ("kernel from the table  K['add'](x, y)", lambda: table["add"](x, y)),
        ("+ node object, kernel_table, Add.forward -> ctx.kernel", lambda: Add.forward(with_ctx(Add), x, y)),
        ("+ output tensor  Tensor(out, device)", lambda: Tensor(Add.forward(with_ctx(Add), x, y), device)),
        ("Add.apply(a, b)  (argument loop, grad mode, node)", lambda: Add.apply(a, b)),
        ("a + b  (the dunder)", lambda: a + b),
        ("relu kernel from the table  K['relu'](x)", lambda: table["relu"](x)),
        ("Relu.apply(a)", lambda: Relu.apply(a)),
        ("a.relu()", lambda: a.relu()),
    ]
    for mode in (True, False):
        tg.set_grad_enabled(mode)
        print("grad mode on (recording)" if mode else "no_grad")
        for name, fn in layers:
            print(f"  {best_us(fn):6.2f} us  {name}")
    tg.set_grad_enabled(True)


if __name__ == "__main__":
    main()
