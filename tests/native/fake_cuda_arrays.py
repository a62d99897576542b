"""Fake CUDA arrays (objects with a __cuda_array_interface__, never dereferenced) of any element
type, and the table of malformed interfaces every array argument of a tilegrad._cuda binding
must reject, for bindings whose arguments are not all float32 (attention, cross-entropy)."""
import pytest

from .test_bindings import CUDA_BAD, Fake, cai, raises_naming

ITEMSIZE = {"<f4": 4, "<f2": 2, "<u2": 2, "|b1": 1, "<i8": 8, "<i4": 4}
DTYPE_NAME = {"<f4": "float32", "<f2": "float16", "<u2": "uint16", "|b1": "bool", "<i8": "int64", "<i4": "int32"}


def c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _fortran(d, itemsize):
    return {**d, "strides": tuple(reversed(c_strides(tuple(reversed(d["shape"])), itemsize)))}


def _scaled(d, itemsize, scale):
    return {**d, "strides": tuple(scale * s for s in c_strides(d["shape"], itemsize))}


def bad_interfaces(typestr, wrong_typestr="<f8"):
    """(label, transform, exception, message fragment) for an argument whose element type is
    `typestr`: the dtype-independent cases of test_bindings.CUDA_BAD plus typestr, stride and
    alignment cases sized for that type."""
    size = ITEMSIZE[typestr]
    name = DTYPE_NAME[typestr]
    plain = [c for c in CUDA_BAD if not c[0].startswith(("typestr", "strides", "unaligned"))]
    cases = plain + [
        ("typestr wrong", lambda d: {**d, "typestr": wrong_typestr}, TypeError, name),
        ("typestr big-endian", lambda d: {**d, "typestr": ">" + typestr[1:]}, TypeError, name),
        ("typestr not str", lambda d: {**d, "typestr": 4}, TypeError, "typestr"),
        ("strides fortran", lambda d: _fortran(d, size), ValueError, "C-contiguous"),
        ("strides reversed", lambda d: _scaled(d, size, -1), ValueError, "C-contiguous"),
        ("strides step 2", lambda d: _scaled(d, size, 2), ValueError, "C-contiguous"),
        ("strides wrong rank", lambda d: {**d, "strides": (size,) * (len(d["shape"]) + 1)}, TypeError, "strides"),
    ]
    if size > 1:
        cases.append(("unaligned pointer", lambda d: {**d, "data": (d["data"][0] + size // 2, d["data"][1])},
                      ValueError, "aligned"))
    return cases


def wrap(v):
    return Fake(v) if isinstance(v, dict) else v


def call(module, fn, args, **kw):
    """module.fn(**args) with every dict in args turned into a Fake CUDA array."""
    return getattr(module, fn)(**{k: wrap(v) for k, v in args.items()}, **kw)


def readonly(d):
    return {**d, "data": (d["data"][0], True)}


def check_bad_interface(module, fn, good, name, label, transform, exc, fragment):
    args = good()
    long_dims = sum(n > 1 for n in args[name]["shape"])
    if label == "strides fortran" and long_dims < 2:
        pytest.skip("Fortran order of this shape is C-contiguous too")
    if label in ("strides reversed", "strides step 2") and long_dims == 0:
        pytest.skip("dims of size 1 may carry any stride")
    args[name] = transform(args[name])
    with raises_naming(exc, fn, "_cuda", f"'{name}'", fragment):
        call(module, fn, args)


__all__ = ["Fake", "cai", "raises_naming", "bad_interfaces", "call", "readonly", "check_bad_interface", "wrap"]
