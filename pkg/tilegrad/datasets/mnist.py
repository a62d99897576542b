"""MNIST and Fashion-MNIST from IDX files in a directory the user provides (nothing is
downloaded). The files keep their distributed names, gzipped or not:

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

in ``root`` itself or in torchvision's layout ``root/MNIST/raw`` (``root/FashionMNIST/raw``).

IDX format: a big-endian header -- two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions -- then each dimension as a big-endian uint32, then the data. So images
start with the magic 0x00000803 and labels with 0x00000801.
"""
import gzip
import os

import numpy as np

from ..creation import from_numpy
from .images import ImageDataset

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path):
    """The array stored in an IDX file (``.gz`` is decompressed), with clear errors for a file
    that is not IDX or is truncated."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for damaged archives
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX data is {len(data) - header} bytes but the header's shape {shape} needs "
                         f"{expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class MNIST(ImageDataset):
    """MNIST from local IDX files: samples ``(image, label)``, image float32 (1, 28, 28) scaled to
    [0, 1] (pixel / 255), label an int64 scalar tensor; ``train`` picks the 60,000 training or
    the 10,000 test images. ``transform``/``target_transform`` are applied per sample."""

    classes = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine")

    def __init__(self, root, train=True, transform=None, target_transform=None):
        self.root = os.fspath(root)
        self.train = train
        prefix = "train" if train else "t10k"
        images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(self._find(f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{self.root}: expected images (N, H, W) and N labels, got shapes {images.shape} and "
                             f"{labels.shape}")
        data = (images.astype(np.float32) / np.float32(255.0))[:, None]
        super().__init__(from_numpy(np.ascontiguousarray(data)), from_numpy(labels.astype(np.int64)), transform,
                         target_transform)

    def _find(self, stem):
        dirs = [self.root, os.path.join(self.root, type(self).__name__, "raw")]
        for d in dirs:
            for name in (stem, stem + ".gz"):
                if os.path.isfile(os.path.join(d, name)):
                    return os.path.join(d, name)
        prefix = "train" if self.train else "t10k"
        needed = f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]"
        raise FileNotFoundError(f"{type(self).__name__}: {stem}[.gz] not found in {' or '.join(dirs)}. The "
                                f"{'training' if self.train else 'test'} split reads {needed} from one of those "
                                "directories; tilegrad does not download them.")


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): the same file names and format as MNIST, ten kinds of clothing."""

    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
