"""``Conv1d``: a 1-d convolution over ``F.conv1d`` (the 2-d op on a unit-height view)."""
from ... import creation
from .. import layers_functional as FL
from ..parameter import Parameter
from .conv import _ConvNd
from .module import Module


def _single(v):
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


class Conv1d(Module):
    """Cross-correlation of (N, C_in, L) with weight (C_out, C_in / groups, K)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv1d: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                             f"divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv1d: padding_mode={padding_mode!r} is not supported (only 'zeros')")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if padding == "same" and _single(stride) != 1:
            raise ValueError("padding='same' is not supported for strided convolutions")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (_single(kernel_size),), (_single(stride),), (_single(dilation),)
        self.padding = padding if isinstance(padding, str) else (_single(padding),)
        self.padding_mode = padding_mode
        self.weight = Parameter(creation.empty(out_channels, in_channels // groups, self.kernel_size[0],
                                               device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # As Conv2d: kaiming_uniform_(a=sqrt(5)) and a bias in U(+-1/sqrt(fan_in)).
    reset_parameters = _ConvNd.reset_parameters

    def forward(self, x):
        if x.ndim not in (2, 3) or x.shape[-2] != self.in_channels:
            raise ValueError(f"Conv1d(in_channels={self.in_channels}): expected input of shape "
                             f"(N, {self.in_channels}, L) or ({self.in_channels}, L), got shape {tuple(x.shape)}")
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return FL.conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0], self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding!r}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
