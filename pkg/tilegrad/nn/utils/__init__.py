"""``tilegrad.nn.utils``: helpers for training loops, as in ``torch.nn.utils``."""
from .clip_grad import clip_grad_norm_, clip_grad_value_, get_total_norm  # noqa: F401

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]
