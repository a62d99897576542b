"""Examples on the 8x8 handwritten digits shipped with tilegrad: an MLP and a CNN classifier, and
an autoencoder. A fixed 80/20 split (seeded) gives 1,437 training and 360 test images."""
import numpy as np

import tilegrad
from tilegrad import nn, optim
from tilegrad.nn import functional as F
from tilegrad.utils.data import DataLoader, TensorDataset

from .base import Experiment, split
from .runner import Target


def load(rng):
    """(train_x, train_y, test_x, test_y): images scaled to [0, 1] as (N, 1, 8, 8) float32."""
    from tilegrad.datasets import load_digits
    images, labels = load_digits()
    images = np.asarray(images, dtype=np.float32).reshape(-1, 1, 8, 8)
    images = images / images.max()
    labels = np.asarray(labels, dtype=np.int64)
    train, test = split(len(labels), 0.2, rng)
    return images[train], labels[train], images[test], labels[test]


class _DigitsExperiment(Experiment):
    batch_size = 32

    def __init__(self, device, seed):
        super().__init__(device, seed)
        train_x, train_y, test_x, test_y = load(self.rng)
        self.train_set = TensorDataset(self.tensor(train_x), self.tensor(train_y))
        self.test_x, self.test_y = self.tensor(test_x), self.tensor(test_y)
        self.model = self.build().to(self.device)
        self.optimizer = optim.Adam(self.model.parameters(), lr=self.lr)

    def train_batches(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)


class _Classifier(_DigitsExperiment):
    target = Target("test_accuracy", ">=", 0.97)

    def train_step(self, batch):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        correct = (logits.argmax(1) == y).sum().item()
        return loss.item(), len(y), {"acc": correct / len(y)}

    def evaluate(self):
        logits = self.model(self.test_x)
        return {"test_loss": F.cross_entropy(logits, self.test_y).item(),
                "test_accuracy": (logits.argmax(1) == self.test_y).float().mean().item()}


class MLPExperiment(_Classifier):
    """64-128-64-10 ReLU network."""
    default_epochs = 25
    lr = 3e-3

    def build(self):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


class CNNExperiment(_Classifier):
    """Two 3x3 convolutions, 2x2 max pooling, two linear layers."""
    default_epochs = 15
    lr = 2e-3
    target = Target("test_accuracy", ">=", 0.98)

    def build(self):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


class AutoencoderExperiment(_DigitsExperiment):
    """64 -> 32 -> 8 -> 32 -> 64 with a sigmoid output; mean squared reconstruction error."""
    default_epochs = 40
    lr = 3e-3
    target = Target("test_mse", "<=", 0.03)

    def build(self):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8),
            nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())

    def train_step(self, batch):
        x, _ = batch
        loss = F.mse_loss(self.model(x), x.flatten(1))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item(), len(x), {}

    def evaluate(self):
        return {"test_mse": F.mse_loss(self.model(self.test_x), self.test_x.flatten(1)).item()}

    def report(self):
        with tilegrad.no_grad():
            recon = self.model(self.test_x[:1]).reshape(8, 8).cpu().numpy()
        original = self.test_x[0, 0].cpu().numpy()
        shades = " .:-=+*#%@"
        rows = ["".join(shades[min(int(v * 9.99), 9)] for v in row) for row in original]
        rows2 = ["".join(shades[min(int(v * 9.99), 9)] for v in row) for row in recon]
        return "test image | reconstruction\n" + "\n".join(f"  {a}   {b}" for a, b in zip(rows, rows2))
