"""The training loop every example shares: epochs with a progress bar, evaluation, an atomic
checkpoint after each epoch, and ``resume`` from the last one."""
import os
import time

import tilegrad

from . import get
from .progress import Progress


class Target:
    """What an example promises with its defaults, e.g. Target("test_accuracy", ">=", 0.97)."""

    def __init__(self, metric, op, value):
        self.metric, self.op, self.value = metric, op, value

    def met(self, metrics):
        v = metrics[self.metric]
        return v >= self.value if self.op == ">=" else v <= self.value

    def __str__(self):
        return f"{self.metric} {self.op} {self.value}"


def default_checkpoint(name):
    return os.path.join("checkpoints", f"{name}.safetensors")


def run(name, device="cpu", epochs=None, resume=False, checkpoint=None, seed=0, stream=None, say=print):
    """Train example ``name``; returns its final metrics plus ``target_met`` and ``seconds``."""
    experiment = get(name)(device, seed)
    epochs = experiment.default_epochs if epochs is None else epochs
    path = checkpoint or default_checkpoint(name)
    first = 0
    if resume:
        if not os.path.exists(path):
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; train once without --resume first")
        state = tilegrad.load(path, map_location=device)
        experiment.load_state_dict(state)
        first = int(state["epoch"])
        say(f"resumed {name} from {path} after epoch {first}")
    metrics = {}
    started = time.perf_counter()
    for epoch in range(first, epochs):
        tilegrad.manual_seed(seed * 100_003 + epoch)  # each epoch's shuffling is the same with or without resume
        batches = experiment.train_batches()
        bar = Progress(len(batches), f"{name} {epoch + 1}/{epochs}", stream)
        experiment.model.train()
        for batch in batches:
            loss, samples, shown = experiment.train_step(batch)
            bar.update(samples, loss=loss, **shown)
        experiment.model.eval()
        with tilegrad.no_grad():
            metrics = experiment.evaluate()
        bar.close(**metrics)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tilegrad.save(dict(experiment.state_dict(), epoch=epoch + 1), path)
    if not metrics:  # resumed at or past the last epoch: just evaluate
        experiment.model.eval()
        with tilegrad.no_grad():
            metrics = experiment.evaluate()
    report = experiment.report()
    if report:
        say(report)
    met = experiment.target.met(metrics)
    say(f"{name}: {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())}; target {experiment.target}: "
        f"{'met' if met else 'NOT met'}; checkpoint {path}")
    return dict(metrics, target_met=met, seconds=time.perf_counter() - started)
