"""Random number generators. As in PyTorch there is one default generator per device, seeded
with a fixed value until ``manual_seed`` is called, so runs are reproducible by default."""
import numpy as np

DEFAULT_SEED = 67280421310721  # PyTorch's default, so "unseeded" runs are repeatable too


class Generator:
    """A seeded source of random numbers for CPU tensors (NumPy's PCG64)."""

    def __init__(self, device="cpu"):
        self.device = device
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed):
        self._seed = int(seed)
        self.np = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self):
        return self._seed


default_generator = Generator()


def manual_seed(seed):
    """Seed the CPU generator and, where a GPU is usable, CuPy's."""
    from . import cuda
    default_generator.manual_seed(seed)
    cuda.manual_seed(seed)
    return default_generator


def initial_seed():
    return default_generator.initial_seed()
