"""``tilegrad.utils``: data loading (``tilegrad.utils.data``), as in ``torch.utils``."""
from . import data  # noqa: F401
