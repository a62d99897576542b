"""The op table: every op defined once, with its forward (in kernel names), its backward, its
sample inputs (for the parity and gradient tests) and its cost (for the bench).

``OPS`` maps op names to their classes; ``tests/ops`` and ``tilegrad bench`` iterate over it.
"""
from .base import OPS, Cost, Op, Sample, op  # noqa: F401
from . import (elementwise, activation, activation_extra, reduce, shape, matmul, norm, gather, conv, loss,  # noqa: F401,E402
               attention, sort, select, linalg, math)  # (fills OPS)
