"""What every example provides to the runner."""
import numpy as np

import tilegrad


class Experiment:
    """Subclasses build ``model``, ``optimizer`` and data in ``__init__(device, seed)`` and define
    ``train_batches()``, ``train_step(batch) -> (loss, samples, shown)``, ``evaluate() -> metrics``."""

    default_epochs = 10
    target = None

    def __init__(self, device, seed):
        self.device = tilegrad.device(device)
        tilegrad.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def report(self):
        """Anything worth printing after training (samples, coverage); empty by default."""
        return ""

    def tensor(self, array):
        return tilegrad.tensor(array, device=self.device)


def split(n, test_fraction, rng):
    """A fixed random train/test split of ``n`` indices."""
    order = rng.permutation(n)
    cut = int(round(n * (1 - test_fraction)))
    return order[:cut], order[cut:]
