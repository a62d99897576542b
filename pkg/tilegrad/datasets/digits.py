"""The 8x8 handwritten digits (UCI, CC BY 4.0; see data/README.txt): 1,797 images, 10 classes.

Small enough to ship in the package and to train an MLP or a small CNN on in seconds on a CPU.
"""
import os

import numpy as np

from ..creation import from_numpy
from .images import ImageDataset

_PATH = os.path.join(os.path.dirname(__file__), "data", "digits.npz")
N_SAMPLES = 1797
CLASSES = tuple(range(10))


def load_digits(as_numpy=False):
    """``(images, labels)``: images float32 of shape (1797, 8, 8) scaled from 0..16 to [0, 1]
    (pixel / 16), labels int64 in 0..9. Tensors, or NumPy arrays with ``as_numpy=True``."""
    with np.load(_PATH) as f:
        images = f["images"].astype(np.float32) / np.float32(16.0)
        labels = f["labels"].astype(np.int64)
    if as_numpy:
        return images, labels
    return from_numpy(images), from_numpy(labels)


def digits_split(test_fraction=0.2, seed=0):
    """``(train_indices, test_indices)``: a deterministic split, stratified by class (each digit
    keeps the same share in both parts), the same on every machine for a given ``seed``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    _, labels = load_digits(as_numpy=True)
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for c in CLASSES:
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class Digits(ImageDataset):
    """The digits as a Dataset of ``(image, label)``: image float32 (1, 8, 8) in [0, 1] (or (64,)
    with ``flatten=True``), label an int64 scalar tensor. ``train`` picks a part of
    ``digits_split(test_fraction, seed)``; ``train=None`` keeps all 1,797 samples. ``transform``
    and ``target_transform`` are applied per sample, as in torchvision."""

    classes = CLASSES

    def __init__(self, train=True, test_fraction=0.2, seed=0, flatten=False, transform=None, target_transform=None):
        images, labels = load_digits(as_numpy=True)
        if train is not None:
            train_idx, test_idx = digits_split(test_fraction, seed)
            keep = train_idx if train else test_idx
            images, labels = images[keep], labels[keep]
        images = images.reshape(len(images), 64) if flatten else images[:, None]
        super().__init__(from_numpy(np.ascontiguousarray(images)), from_numpy(labels), transform, target_transform)
