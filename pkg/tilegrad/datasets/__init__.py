"""``tilegrad.datasets``: small data sets for examples and tests.

- ``load_digits()`` / ``Digits``: the 8x8 handwritten digits (shipped; UCI, CC BY 4.0).
- ``MNIST`` / ``FashionMNIST``: readers for IDX files in a directory you provide.
- ``load_text()`` / ``CharDataset``: a public-domain English text for character-level models.

Sources and licences of the shipped files: ``data/README.txt`` next to this module.
"""
from .digits import Digits, digits_split, load_digits  # noqa: F401
from .mnist import MNIST, FashionMNIST, read_idx  # noqa: F401
from .text import CharDataset, load_text  # noqa: F401

__all__ = ["load_digits", "digits_split", "Digits", "MNIST", "FashionMNIST", "read_idx", "load_text", "CharDataset"]
