"""bfloat16 as raw bits for the GPU timing scripts: CuPy has no bfloat16 dtype, so the kernels
take bfloat16 values as uint16 arrays (PyTorch reads them as int16 viewed as bfloat16)."""


def to_bits(cp, x):
    """float CuPy array -> bfloat16 bits (uint16), rounded to nearest even."""
    w = x.astype(cp.float32).view(cp.uint32).astype(cp.uint64)
    return ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(cp.uint16)


def to_float32(cp, bits):
    return (bits.astype(cp.uint32) << 16).view(cp.float32)
