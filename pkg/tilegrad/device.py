"""Devices: where a tensor's storage lives ("cpu": a NumPy array, "cuda:N": a CuPy array)."""
import numpy as np


class Device:
    """``tilegrad.device("cuda:0")``; compares equal to the string it was made from."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, Device):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise ValueError(f"invalid device string {type}:{idx!r}")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"unknown device type {type!r}: expected 'cpu' or 'cuda'")
        if type == "cuda" and index is None:
            index = 0
        if type == "cpu":
            index = None
        self.type = type
        self.index = index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = Device(other)
            except ValueError:
                return False
        return isinstance(other, Device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))


CPU = Device("cpu")


def as_device(d):
    """Device from a Device, a string, an int (a CUDA ordinal) or None (the CPU)."""
    if d is None:
        return CPU
    if isinstance(d, Device):
        return d
    if isinstance(d, int):
        return Device("cuda", d)
    return Device(d)


def device_of(array):
    """The device an array lives on: NumPy arrays on the CPU, CuPy arrays on their GPU."""
    if isinstance(array, np.ndarray):
        return CPU
    return Device("cuda", array.device.id)
