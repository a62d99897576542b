"""2-D convolutions: ``Conv2d`` and ``ConvTranspose2d`` over ``F.conv2d``/``F.conv_transpose2d``."""
import math

from ... import creation
from .. import functional as F, init
from ..parameter import Parameter
from .module import Module


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _ConvNd(Module):
    """Shared by Conv2d and ConvTranspose2d: hyper-parameters, weights and their initialisation."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, transposed, output_padding=0, device=None, dtype=None):
        super().__init__()
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}: padding_mode={padding_mode!r} is not supported (only 'zeros')")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        self.output_padding = _pair(output_padding)
        self.transposed, self.padding_mode = transposed, padding_mode
        shape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups))
        self.weight = Parameter(creation.empty(*shape, *self.kernel_size, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # As Linear: kaiming_uniform_(a=sqrt(5)) and a bias in U(+-1/sqrt(fan_in)), where fan_in is
        # computed from the weight (for a transposed conv: out_channels/groups * kernel area).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x):
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"{type(self).__name__}(in_channels={self.in_channels}): expected input of shape "
                             f"(N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), got shape {tuple(x.shape)}")

    def _batched(self, fn, x):
        """Run ``fn`` on a batch; unbatched (C, H, W) input goes through as a batch of one."""
        self._check_input(x)
        if x.ndim == 3:
            return fn(x.unsqueeze(0)).squeeze(0)
        return fn(x)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """Cross-correlation of (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, False, device=device, dtype=dtype)

    def forward(self, x):
        return self._forward_with(x, None)

    def _forward_with(self, x, activation):
        """forward, then ``activation`` (None or "relu") in the op's epilogue (see nn.Sequential)."""
        return self._batched(lambda b: F._conv2d(b, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                                 self.groups, activation), x)


class ConvTranspose2d(_ConvNd):
    """The gradient of Conv2d with respect to its input; weight (C_in, C_out/groups, kH, kW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose2d: padding must be a number or a pair, not a string")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, True, output_padding, device=device, dtype=dtype)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than "
                                 f"either stride {self.stride} or dilation {self.dilation}")

    def forward(self, x, output_size=None):
        if output_size is not None:
            raise NotImplementedError("ConvTranspose2d: output_size is not supported; pass output_padding instead")
        return self._batched(lambda b: F.conv_transpose2d(b, self.weight, self.bias, self.stride, self.padding,
                                                          self.output_padding, self.groups, self.dilation), x)
