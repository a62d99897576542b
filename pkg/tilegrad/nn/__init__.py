"""``tilegrad.nn``: modules, layers, parameters, initialisation and losses (``torch.nn``'s shape).

    import tilegrad.nn as nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model(tilegrad.randn(2, 4)).shape  # (2, 1)

``tilegrad.nn.functional`` holds the functional forms the layers call.
"""
from . import functional, init, utils  # noqa: F401
from .parameter import Parameter  # noqa: F401
from .modules import *  # noqa: F401,F403
