"""``tilegrad.save`` / ``tilegrad.load``: checkpoints in the safetensors format.

A checkpoint is one safetensors file. Every tensor (and NumPy array) found in the saved object is
stored as a safetensors tensor, named by its path in the object (``"fc1.weight"``,
``"state.0.exp_avg"``), so other safetensors readers can open the file too. Everything else --
the nesting of dicts, lists and tuples, and plain Python values such as learning rates -- goes
into the file's metadata as JSON. Loading never runs code from the file (there is no pickle).

Integrity: the metadata holds a CRC-32 of every tensor's bytes and a SHA-256 digest over the
structure, the CRCs and every tensor's name, dtype and shape. ``load`` checks the layout, the
digest and the CRCs before it returns, and raises ValueError naming the file and the fault for a
truncated, corrupted or foreign file: it never returns a partial result.

Writes are atomic: the bytes go to a temporary file in the destination's directory, which is
fsynced and then renamed over the destination; on any failure the temporary file is removed and
an existing checkpoint at the path is left as it was.
"""
import collections
import hashlib
import json
import os
import uuid
import zlib

import numpy as np

from . import dtypes
from .device import Device, as_device
from .tensor import Tensor

_FORMAT = "tilegrad-checkpoint-1"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


# ---- encoding the object --------------------------------------------------------------------
class _Encoder:
    """Turns an object into a JSON structure plus a dict of named host arrays."""

    def __init__(self):
        self.arrays = {}

    def _name(self, path):
        name = ".".join(path) or "tensor"
        unique, n = name, 1
        while unique in self.arrays:  # keys containing "." can collide; keep every name unique
            unique, n = f"{name}#{n}", n + 1
        return unique

    def encode(self, obj, path=()):
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, Tensor):
            name = self._name(path)
            data = obj._data if obj.device.type == "cpu" else obj._data.get()  # CUDA: a host copy
            self.arrays[name] = _contiguous(data)
            out = {"$tensor": name}
            if obj.device.type != "cpu":
                out["device"] = str(obj.device)
            if obj.requires_grad and obj.is_leaf:
                out["requires_grad"] = True
            return out
        if isinstance(obj, np.ndarray):
            name = self._name(path)
            self.arrays[name] = _contiguous(obj)
            return {"$ndarray": name}
        if isinstance(obj, np.generic):
            return {"$npscalar": obj.dtype.str, "value": obj.item()}
        if isinstance(obj, dtypes.DType):
            return {"$dtype": obj.name}
        if isinstance(obj, Device):
            return {"$device": str(obj)}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, path + (str(i),)) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, path + (str(i),)) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            items = [[self._key(k, path), self.encode(v, path + (str(k),))] for k, v in obj.items()]
            return {"$odict" if isinstance(obj, collections.OrderedDict) else "$dict": items}
        where = ".".join(path) or "the top level"
        raise TypeError(f"tilegrad.save: cannot save an object of type {type(obj).__name__} at {where}; "
                        "checkpoints hold tensors, NumPy arrays, None, bool, int, float, str, and dicts, lists "
                        "and tuples of them")

    def _key(self, key, path):
        if key is None or isinstance(key, (bool, int, float, str)):
            return key
        if isinstance(key, tuple):
            return {"$tuple": [self._key(k, path) for k in key]}
        raise TypeError(f"tilegrad.save: dict key {key!r} at {'.'.join(path) or 'the top level'} is a "
                        f"{type(key).__name__}; keys must be str, int, float, bool, None or tuples of them")


def _contiguous(array):
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return array if array.flags.c_contiguous else array.copy(order="C")


def _crc(array):
    return zlib.crc32(array.reshape(-1).view(np.uint8)) if array.size else 0


def _digest(structure, crcs, arrays):
    """SHA-256 over everything that gives the file its meaning: a flipped byte anywhere in the
    header (a value, a name, a dtype, a shape) or in the data changes it."""
    h = hashlib.sha256()
    h.update(structure.encode())
    h.update(crcs.encode())
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"\0{name}\0{a.dtype.str}\0{list(a.shape)}".encode())
    return h.hexdigest()


# ---- save -----------------------------------------------------------------------------------
def save(obj, f):
    """Save ``obj`` (a tensor, or dicts/lists/tuples of tensors, arrays and plain values, such as
    a model's or an optimizer's ``state_dict()``) to the path or binary file object ``f``."""
    from safetensors.numpy import save as st_save
    enc = _Encoder()
    structure = json.dumps(enc.encode(obj), separators=(",", ":"))
    crcs = json.dumps({name: _crc(a) for name, a in sorted(enc.arrays.items())}, separators=(",", ":"))
    metadata = {"format": _FORMAT, "tilegrad.structure": structure, "tilegrad.crc32": crcs,
                "tilegrad.digest": _digest(structure, crcs, enc.arrays)}
    data = st_save(enc.arrays, metadata=metadata)
    if hasattr(f, "write"):
        f.write(data)
    else:
        _atomic_write(os.fspath(f), data)


def _atomic_write(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with 0o666 lets the umask decide the permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every platform can open a directory
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---- load -----------------------------------------------------------------------------------
def load(f, map_location=None, weights_only=True):
    """Load what ``save`` wrote to the path or binary file object ``f``.

    Tensors come back with their dtypes and shapes, on the device they were saved from, or on
    ``map_location`` ("cpu", "cuda", "cuda:1" or a device). A safetensors file written by another
    tool loads as a flat dict of tensors. ``weights_only`` is accepted for PyTorch compatibility:
    loading never executes code, whatever its value.
    """
    if hasattr(f, "read"):
        name, data = getattr(f, "name", "<file object>"), f.read()
    else:
        name = os.fspath(f)
        with open(name, "rb") as fh:
            data = fh.read()
    header = _check_layout(name, data)
    arrays = _read_arrays(name, data)
    metadata = header.get("__metadata__") or {}
    target = as_device(map_location) if map_location is not None else None
    # Any sign of a tilegrad checkpoint means it must verify: a flipped byte in one metadata key
    # must not turn the file into a "foreign" one that loads unchecked.
    if metadata.get("format") != _FORMAT and not any(k.startswith("tilegrad") for k in metadata):
        return {k: _to_tensor(name, a, target, None, False) for k, a in arrays.items()}
    structure = _verify(name, metadata, arrays)
    return _Decoder(name, arrays, target).decode(structure)


def _corrupt(name, what):
    return ValueError(f"tilegrad.load: {name!r} {what}")


def _check_layout(name, data):
    """Parse and check the safetensors header against the file's size, with messages that say
    what is wrong (the library's own errors are terse)."""
    size = len(data)
    if size < 8:
        raise _corrupt(name, f"is not a safetensors checkpoint or is truncated: {size} bytes, fewer than the "
                             "8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER:
        raise _corrupt(name, f"is not a safetensors checkpoint: its first 8 bytes give a header length of {n} "
                             "bytes, more than any safetensors header")
    if 8 + n > size:
        raise _corrupt(name, f"is truncated: the header should be {n} bytes but only {size - 8} bytes follow the "
                             "length field")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(name, f"is corrupted or not a safetensors checkpoint: its header is not valid JSON ({e})") \
            from None
    if not isinstance(header, dict):
        raise _corrupt(name, "is corrupted or not a safetensors checkpoint: its header is not a JSON object")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            start, stop = info["data_offsets"]
            end = max(end, int(stop))
        except (TypeError, KeyError, ValueError):
            raise _corrupt(name, f"is corrupted: the header entry for tensor {key!r} has no valid data_offsets") \
                from None
    have = size - 8 - n
    if have < end:
        raise _corrupt(name, f"is truncated: the tensors need {end} bytes of data but the file holds {have}")
    if have > end:
        raise _corrupt(name, f"is corrupted: {have - end} unexpected bytes follow the tensor data")
    return header


def _read_arrays(name, data):
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load
    try:
        return st_load(bytes(data))
    except (SafetensorError, ValueError, TypeError) as e:
        raise _corrupt(name, f"is corrupted or not a valid safetensors file: {e}") from None


def _verify(name, metadata, arrays):
    if metadata.get("format") != _FORMAT:
        raise _corrupt(name, f"has an unknown checkpoint format {metadata.get('format')!r} (expected {_FORMAT!r})")
    structure, crcs = metadata.get("tilegrad.structure", ""), metadata.get("tilegrad.crc32", "")
    if _digest(structure, crcs, arrays) != metadata.get("tilegrad.digest"):
        raise _corrupt(name, "is corrupted: its header does not match the digest written with it "
                             "(a name, dtype, shape or saved value changed)")
    expected = json.loads(crcs)
    if sorted(expected) != sorted(arrays):
        raise _corrupt(name, "is corrupted: its tensors are not the ones it was saved with")
    for key, crc in expected.items():
        if _crc(arrays[key]) != crc:
            raise _corrupt(name, f"is corrupted: the data of tensor {key!r} fails its CRC-32 check")
    return json.loads(structure)


def _to_tensor(name, array, target, saved_device, requires_grad):
    device = target if target is not None else as_device(saved_device)
    if device.type == "cuda":
        from . import cuda
        if not cuda.is_available():
            raise RuntimeError(f"tilegrad.load: {name!r} holds tensors saved from {device}, but CUDA is not "
                               "available here; pass map_location='cpu'")
    t = Tensor(np.array(array))  # own, writable memory
    if device.type != "cpu":
        t = t.to(device)
    if requires_grad and t.is_floating_point():
        t.requires_grad_(True)
    return t


class _Decoder:
    def __init__(self, name, arrays, target):
        self.name, self.arrays, self.target = name, arrays, target

    def decode(self, node):
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$tensor" in node:
            return _to_tensor(self.name, self._array(node["$tensor"]), self.target, node.get("device"),
                              node.get("requires_grad", False))
        if "$ndarray" in node:
            return np.array(self._array(node["$ndarray"]))
        if "$npscalar" in node:
            return np.dtype(node["$npscalar"]).type(node["value"])
        if "$dtype" in node:
            return dtypes.from_name(node["$dtype"])
        if "$device" in node:
            return Device(node["$device"])
        if "$tuple" in node:
            return tuple(self.decode(v) for v in node["$tuple"])
        if "$dict" in node or "$odict" in node:
            cls = collections.OrderedDict if "$odict" in node else dict
            return cls((self.decode(k), self.decode(v)) for k, v in node.get("$dict", node.get("$odict")))
        raise _corrupt(self.name, f"is corrupted: unknown entry {sorted(node)} in its structure")

    def _array(self, key):
        if key not in self.arrays:
            raise _corrupt(self.name, f"is corrupted: its structure refers to a tensor {key!r} the file lacks")
        return self.arrays[key]
