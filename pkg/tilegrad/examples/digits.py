"""Examples on the 8x8 handwritten digits shipped with tilegrad: an MLP and a CNN classifier, and
an autoencoder, on the dataset's fixed stratified 80/20 train/test split."""
import tilegrad
from tilegrad import nn, optim
from tilegrad.nn import functional as F
from tilegrad.utils.data import DataLoader, TensorDataset

from .base import Experiment
from .runner import Target


def load(seed):
    """(train_x, train_y, test_x, test_y): images as (N, 1, 8, 8) float32 in [0, 1], and the
    dataset's fixed stratified 80/20 split."""
    from tilegrad.datasets import digits_split, load_digits
    images, labels = load_digits(as_numpy=True)
    train, test = digits_split(0.2, seed)
    images = images.reshape(-1, 1, 8, 8)
    return images[train], labels[train], images[test], labels[test]


class _DigitsExperiment(Experiment):
    batch_size = 32
    standardize = True  # zero mean and unit variance per pixel, from the training images

    def __init__(self, device, seed):
        super().__init__(device, seed)
        train_x, train_y, test_x, test_y = load(seed)
        if self.standardize:
            mean, std = train_x.mean(0, keepdims=True), train_x.std(0, keepdims=True) + 0.1
            train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        self.train_set = TensorDataset(self.tensor(train_x), self.tensor(train_y))
        self.test_x, self.test_y = self.tensor(test_x), self.tensor(test_y)
        self.model = self.build().to(self.device)
        self.optimizer = optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.05)
        steps = self.default_epochs * (len(train_y) // self.batch_size)
        # One-cycle schedule over the default run; longer runs continue at its final, small rate.
        self.scheduler = optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=self.lr, total_steps=steps)
        self.steps = steps

    def train_batches(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def optimize(self, loss):
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.scheduler.last_epoch < self.steps:
            self.scheduler.step()

    def state_dict(self):
        return dict(super().state_dict(), scheduler=self.scheduler.state_dict())

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.scheduler.load_state_dict(state["scheduler"])


class _Classifier(_DigitsExperiment):
    target = Target("test_accuracy", ">=", 0.97)

    def train_step(self, batch):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        self.optimize(loss)
        correct = (logits.argmax(1) == y).sum().item()
        return loss.item(), len(y), {"acc": correct / len(y)}

    def evaluate(self):
        logits = self.model(self.test_x)
        return {"test_loss": F.cross_entropy(logits, self.test_y).item(),
                "test_accuracy": (logits.argmax(1) == self.test_y).float().mean().item()}


class MLPExperiment(_Classifier):
    """One hidden layer of 512 ReLUs with dropout; AdamW, one-cycle learning rate, label smoothing."""
    default_epochs = 40
    lr = 2e-3

    def build(self):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 512), nn.ReLU(), nn.Dropout(0.3), nn.Linear(512, 10))


class CNNExperiment(_Classifier):
    """Two 3x3 convolutions, 2x2 max pooling, two linear layers with dropout."""
    default_epochs = 20
    lr = 3e-3
    target = Target("test_accuracy", ">=", 0.98)

    def build(self):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))


class AutoencoderExperiment(_DigitsExperiment):
    """64 -> 32 -> 8 -> 32 -> 64 with a sigmoid output; mean squared reconstruction error of the
    pixels in [0, 1]."""
    default_epochs = 40
    lr = 3e-3
    standardize = False  # the sigmoid output reconstructs [0, 1] pixels
    target = Target("test_mse", "<=", 0.03)

    def build(self):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8),
            nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())

    def train_step(self, batch):
        x, _ = batch
        loss = F.mse_loss(self.model(x), x.flatten(1))
        self.optimize(loss)
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
