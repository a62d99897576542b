"""The activation modules beyond the core ones, over ``nn.activations_functional``."""
from ... import creation
from .. import activations_functional as FA
from ..parameter import Parameter
from .module import Module


class _Inplace(Module):
    """An activation with only an ``inplace`` flag."""
    function = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return type(self).function(x, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class SELU(_Inplace):
    function = staticmethod(FA.selu)


class Mish(_Inplace):
    function = staticmethod(FA.mish)


class ReLU6(_Inplace):
    function = staticmethod(FA.relu6)


class Hardswish(_Inplace):
    function = staticmethod(FA.hardswish)


class Hardsigmoid(_Inplace):
    function = staticmethod(FA.hardsigmoid)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return FA.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return FA.elu(x, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return FA.hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class LogSigmoid(Module):
    def forward(self, x):
        return FA.logsigmoid(x)


class Softsign(Module):
    def forward(self, x):
        return FA.softsign(x)


class Tanhshrink(Module):
    def forward(self, x):
        return FA.tanhshrink(x)


class PReLU(Module):
    """x where x > 0, else a * x, with a learnable ``weight`` a: one value, or one per channel
    (``num_parameters`` = the input's dim 1), starting at ``init``."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(creation.full((num_parameters,), init, device=device, dtype=dtype))

    def reset_parameters(self):
        from .. import init
        init.constant_(self.weight, self.init)

    def forward(self, x):
        if self.num_parameters != 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise ValueError(f"PReLU(num_parameters={self.num_parameters}): expected input of shape "
                             f"(N, {self.num_parameters}, ...), got shape {tuple(x.shape)}")
        return FA.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
