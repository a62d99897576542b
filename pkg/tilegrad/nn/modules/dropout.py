"""``Dropout``: zeroes elements with probability p in training and scales the rest by 1/(1-p);
``Dropout1d``/``Dropout2d`` zero whole channels instead."""
from .. import functional as F, layers_functional as FL
from .module import Module


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x):
        if not self.training or self.p == 0:
            return x  # identity outside training: no op, no copy
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeroes whole channels of (N, C, L) or (C, L) input."""

    def forward(self, x):
        return FL.dropout1d(x, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    """Zeroes whole channels of (N, C, H, W) input (3-d input as (N, C, L), as PyTorch)."""

    def forward(self, x):
        return FL.dropout2d(x, self.p, self.training, self.inplace)
