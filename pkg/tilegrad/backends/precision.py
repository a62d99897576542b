"""The float32 matmul precision, as PyTorch's ``torch.set_float32_matmul_precision``.

"highest" (the default): float32 matmul and conv kernels compute in float32.
"high" and "medium": on a GPU, float32 matmul and conv may run on the tensor cores in TF32
(inputs rounded to a 10-bit mantissa, float32 accumulation: about 1e-3 relative error), several
times faster. tilegrad treats "medium" as "high" (PyTorch may use bfloat16 there). The CPU
kernels always compute in float32.

This is one setting for the process, like PyTorch's.
"""

_CHOICES = ("highest", "high", "medium")
_precision = "highest"


def set_float32_matmul_precision(precision):
    """Sets the precision of float32 matmul and conv on the GPU: "highest", "high" or "medium"."""
    global _precision
    if precision not in _CHOICES:
        raise ValueError(f"set_float32_matmul_precision({precision!r}): expected one of {_CHOICES}")
    _precision = precision


def get_float32_matmul_precision():
    """The current float32 matmul precision: "highest", "high" or "medium"."""
    return _precision


def allow_tf32():
    """True when float32 matmul and conv kernels may round their inputs to TF32."""
    return _precision != "highest"
