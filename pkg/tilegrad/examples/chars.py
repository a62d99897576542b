"""Character-level language models on the public-domain English text shipped with tilegrad: an
LSTM, a GRU and a small causal Transformer, each predicting the next character. The last 10%
of the text is held out; the metric is the mean cross-entropy (nats per character) there."""
import numpy as np

import tilegrad
from tilegrad import nn, optim
from tilegrad.nn import functional as F

from .base import Experiment
from .runner import Target


def load():
    from tilegrad.datasets import load_text
    text = load_text()
    vocab = sorted(set(text))
    stoi = {c: i for i, c in enumerate(vocab)}
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    cut = int(len(ids) * 0.9)
    return vocab, ids[:cut], ids[cut:]


def windows(ids, starts, length):
    """(inputs, targets): rows ids[s:s+length] and the characters that follow each one."""
    idx = starts[:, None] + np.arange(length + 1)[None, :]
    chunk = ids[idx]
    return chunk[:, :-1], chunk[:, 1:]


class _CharExperiment(Experiment):
    seq_len = 64
    batch = 32
    steps_per_epoch = 60
    lr = 3e-3
    clip = 1.0

    def __init__(self, device, seed):
        super().__init__(device, seed)
        self.vocab, self.train_ids, self.val_ids = load()
        self.model = self.build(len(self.vocab)).to(self.device)
        self.optimizer = optim.Adam(self.model.parameters(), lr=self.lr)
        starts = np.arange(0, len(self.val_ids) - self.seq_len - 1, self.seq_len)
        x, y = windows(self.val_ids, starts, self.seq_len)
        self.val = (self.tensor(x), self.tensor(y))

    def train_batches(self):
        rng = tilegrad.random.default_generator.np  # seeded per epoch by the runner
        out = []
        for _ in range(self.steps_per_epoch):
            starts = rng.integers(0, len(self.train_ids) - self.seq_len - 1, self.batch)
            x, y = windows(self.train_ids, starts, self.seq_len)
            out.append((self.tensor(x), self.tensor(y)))
        return out

    def loss(self, x, y):
        logits = self.model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def train_step(self, batch):
        x, y = batch
        loss = self.loss(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return loss.item(), x.numel(), {}

    def evaluate(self):
        return {"val_loss": self.loss(*self.val).item()}

    def sample(self, prompt, length, temperature=0.8):
        """Continue ``prompt`` one character at a time, sampling from the model's softmax."""
        stoi = {c: i for i, c in enumerate(self.vocab)}
        ids = [stoi.get(c, 0) for c in prompt]
        rng = np.random.default_rng(0)
        with tilegrad.no_grad():
            for _ in range(length):
                context = self.tensor(np.array([ids[-self.seq_len:]], dtype=np.int64))
                logits = self.model(context)[0, -1].cpu().numpy().astype(np.float64) / temperature
                p = np.exp(logits - logits.max())
                ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return "".join(self.vocab[i] for i in ids)

    def report(self):
        return "sample: " + repr(self.sample("The ", 160))


class _RecurrentModel(nn.Module):
    def __init__(self, cell, vocab, embed=32, hidden=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = cell(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


class LSTMExperiment(_CharExperiment):
    default_epochs = 10
    target = Target("val_loss", "<=", 1.9)  # 1.63 measured with the defaults; a unigram model gets about 3

    def build(self, vocab):
        return _RecurrentModel(nn.LSTM, vocab)


class GRUExperiment(_CharExperiment):
    default_epochs = 10
    target = Target("val_loss", "<=", 1.9)  # 1.63 measured with the defaults

    def build(self, vocab):
        return _RecurrentModel(nn.GRU, vocab)


class _CausalTransformer(nn.Module):
    """Token and position embeddings, pre-norm encoder layers under a causal mask, a linear head."""

    def __init__(self, vocab, length, width=64, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(length, width)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids):
        n = ids.shape[1]
        positions = tilegrad.arange(n, device=ids.device)
        mask = tilegrad.full((n, n), float("-inf"), device=ids.device).triu(1)
        h = self.encoder(self.embed(ids) + self.position(positions), mask=mask, is_causal=True)
        return self.head(self.norm(h))


class TransformerExperiment(_CharExperiment):
    default_epochs = 10
    target = Target("val_loss", "<=", 1.95)  # 1.74 measured with the defaults

    def build(self, vocab):
        return _CausalTransformer(vocab, self.seq_len)
