"""A public-domain English text for character-level models (see data/README.txt), and
``CharDataset``, which cuts a text into (input, next-character target) windows."""
import os

import numpy as np

from ..creation import from_numpy
from ..utils.data import Dataset

_PATH = os.path.join(os.path.dirname(__file__), "data", "founding_documents.txt")


def load_text():
    """The Declaration of Independence, the US Constitution and the Bill of Rights: about 39 KB of
    ASCII English, public domain."""
    with open(_PATH, encoding="utf-8") as f:
        return f.read()


class CharDataset(Dataset):
    """Sample ``i`` is ``(ids[i : i + seq_len], ids[i + 1 : i + seq_len + 1])`` as int64 tensors,
    where ``ids`` encodes ``text`` with a vocabulary of its distinct characters in sorted order
    (``stoi``: char -> id, ``itos``: id -> char)."""

    def __init__(self, text, seq_len):
        if not isinstance(text, str):
            raise TypeError(f"CharDataset expects a str, got {type(text).__name__}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {seq_len}")
        if len(text) < seq_len + 1:
            raise ValueError(f"the text has {len(text)} characters; seq_len={seq_len} needs at least {seq_len + 1}")
        self.text = text
        self.seq_len = seq_len
        self.itos = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.ids = np.array([self.stoi[c] for c in text], dtype=np.int64)

    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, s):
        """The ids of the characters of ``s`` (KeyError for a character outside the vocabulary)."""
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        """The string of a sequence of ids (ints or a 1-d tensor)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return "".join(self.itos[i] for i in ids)

    def __len__(self):
        return len(self.ids) - self.seq_len

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for a CharDataset of {len(self)} samples")
        chunk = self.ids[index:index + self.seq_len + 1]
        return from_numpy(chunk[:-1].copy()), from_numpy(chunk[1:].copy())

    def _fetch_batch(self, indices):
        # all windows of the batch in one gather: (batch, seq_len + 1)
        starts = np.asarray(indices, dtype=np.int64)
        windows = self.ids[starts[:, None] + np.arange(self.seq_len + 1)]
        return [from_numpy(np.ascontiguousarray(windows[:, :-1])), from_numpy(np.ascontiguousarray(windows[:, 1:]))]
