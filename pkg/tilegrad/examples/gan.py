"""A GAN on a 2-D mixture of 8 Gaussians (centres on a circle of radius 2, std 0.02): the
generator must cover all 8 modes, the classic test of mode collapse."""
import math

import numpy as np

import tilegrad
from tilegrad import nn, optim
from tilegrad.nn import functional as F

from .base import Experiment
from .runner import Target

CENTRES = np.array([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])
STD = 0.02


def real_batch(rng, n):
    return (CENTRES[rng.integers(0, 8, n)] + rng.standard_normal((n, 2)) * STD).astype(np.float32)


def coverage(points, near=0.3, min_share=0.02):
    """(modes covered, share of points near some mode): a mode is covered when at least
    ``min_share`` of the points lie within ``near`` of its centre."""
    dist = np.linalg.norm(points[:, None, :] - CENTRES[None], axis=2)
    nearest, close = dist.argmin(1), dist.min(1) < near
    shares = np.bincount(nearest[close], minlength=8) / len(points)
    return int((shares >= min_share).sum()), float(close.mean())


class _Pair(nn.Module):
    """Generator and discriminator under one module, so one state dict holds both."""

    def __init__(self, noise, width):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(noise, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                       nn.Linear(width, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, width), nn.LeakyReLU(0.2), nn.Linear(width, width),
                                           nn.LeakyReLU(0.2), nn.Linear(width, 1))


class GANExperiment(Experiment):
    default_epochs = 12
    steps_per_epoch = 250
    batch = 256
    noise = 4
    target = Target("modes_covered", ">=", 8)

    def __init__(self, device, seed):
        super().__init__(device, seed)
        self.model = _Pair(self.noise, 128).to(self.device)
        self.g_optimizer = optim.Adam(self.model.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        self.d_optimizer = optim.Adam(self.model.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        self.eval_noise = self.tensor(self.rng.standard_normal((2000, self.noise)).astype(np.float32))

    def state_dict(self):
        return {"model": self.model.state_dict(), "g_optimizer": self.g_optimizer.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])

    def train_batches(self):
        rng = tilegrad.random.default_generator.np  # seeded per epoch by the runner
        return [(self.tensor(real_batch(rng, self.batch)),
                 self.tensor(rng.standard_normal((self.batch, self.noise)).astype(np.float32)))
                for _ in range(self.steps_per_epoch)]

    def train_step(self, batch):
        real, z = batch
        g, d = self.model.generator, self.model.discriminator
        ones = tilegrad.ones(len(real), 1, device=self.device)
        zeros = tilegrad.zeros(len(real), 1, device=self.device)
        fake = g(z)
        d_loss = F.binary_cross_entropy_with_logits(d(real), ones) + \
            F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()
        g_loss = F.binary_cross_entropy_with_logits(d(fake), ones)  # non-saturating generator loss
        self.g_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
        return g_loss.item(), len(real), {"d_loss": d_loss.item()}

    def evaluate(self):
        points = self.model.generator(self.eval_noise).cpu().numpy()
        modes, near = coverage(points)
        return {"modes_covered": float(modes), "near_a_mode": near}

    def report(self):
        with tilegrad.no_grad():
            points = self.model.generator(self.eval_noise).cpu().numpy()
        dist = np.linalg.norm(points[:, None, :] - CENTRES[None], axis=2)
        counts = np.bincount(dist.argmin(1)[dist.min(1) < 0.3], minlength=8)
        return "generated samples per mode: " + " ".join(str(int(c)) for c in counts)
