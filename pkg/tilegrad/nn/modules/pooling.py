"""Pooling modules over ``F.max_pool2d``, ``F.avg_pool2d`` and ``F.adaptive_avg_pool2d``."""
from .. import functional as F
from .module import Module


def _batched(module, fn, x):
    """Run ``fn`` on (N, C, H, W); unbatched (C, H, W) input goes through as a batch of one."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{type(module).__name__}: expected input of shape (N, C, H, W) or (C, H, W), "
                         f"got shape {tuple(x.shape)}")
    if x.ndim == 3:
        out = fn(x.unsqueeze(0))
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    return fn(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return _batched(self, lambda b: F.max_pool2d(b, self.kernel_size, self.stride, self.padding, self.dilation,
                                                     ceil_mode=self.ceil_mode, return_indices=self.return_indices), x)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return _batched(self, lambda b: F.avg_pool2d(b, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                                     self.count_include_pad, self.divisor_override), x)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Averages each (N, C) plane down to ``output_size`` (an int, a pair, or None for a kept dim)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return _batched(self, lambda b: F.adaptive_avg_pool2d(b, self.output_size), x)

    def extra_repr(self):
        return f"output_size={self.output_size}"
