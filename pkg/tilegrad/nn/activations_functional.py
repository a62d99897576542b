"""The functional activations beyond the core ones (PyTorch's names and arguments). Most are ops
of ``ops.activation_extra``; prelu, softsign and tanhshrink are exact compositions of tensor ops,
so autograd derives their backward (prelu's weight gradient included)."""
from ..ops import activation_extra as AX
from ..tensor import Tensor, where

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _maybe_inplace(input, out, inplace):  # noqa: A002
    return input._inplace(lambda _: out) if inplace else out


def softplus(input, beta=1.0, threshold=20.0):  # noqa: A002
    return AX.Softplus.apply(input, float(beta), float(threshold))


def elu(input, alpha=1.0, inplace=False):  # noqa: A002
    return _maybe_inplace(input, AX.Elu.apply(input, float(alpha), 1.0), inplace)


def selu(input, inplace=False):  # noqa: A002
    return _maybe_inplace(input, AX.Elu.apply(input, SELU_ALPHA, SELU_SCALE), inplace)


def mish(input, inplace=False):  # noqa: A002
    return _maybe_inplace(input, AX.Mish.apply(input), inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # noqa: A002
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return _maybe_inplace(input, AX.Hardtanh.apply(input, float(min_val), float(max_val)), inplace)


def relu6(input, inplace=False):  # noqa: A002
    return hardtanh(input, 0.0, 6.0, inplace)


def hardswish(input, inplace=False):  # noqa: A002
    return _maybe_inplace(input, AX.Hardswish.apply(input), inplace)


def hardsigmoid(input, inplace=False):  # noqa: A002
    return _maybe_inplace(input, AX.Hardsigmoid.apply(input), inplace)


def logsigmoid(input):  # noqa: A002
    return AX.LogSigmoid.apply(input)


def prelu(input, weight):  # noqa: A002
    """x where x > 0, else weight * x; ``weight`` has one entry or one per channel (dim 1)."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("prelu: input and weight must be Tensors")
    n = weight.numel()
    if n != 1:
        if input.ndim < 2 or input.shape[1] != n:
            raise ValueError(f"prelu: weight has {n} entries, which must be 1 or the number of channels (dim 1) "
                             f"of input {tuple(input.shape)}")
        weight = weight.reshape((1, n) + (1,) * (input.ndim - 2))
    else:
        weight = weight.reshape(())
    return where(input > 0, input, weight * input)


def softsign(input):  # noqa: A002
    return input / (input.abs() + 1)


def tanhshrink(input):  # noqa: A002
    return input - input.tanh()
