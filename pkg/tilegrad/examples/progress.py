"""A dependency-free progress bar for training loops: one line redrawn in place on a terminal,
one line per finished epoch elsewhere (logs, CI)."""
import sys
import time


class Progress:
    def __init__(self, total, desc, stream=None, min_interval=0.1):
        self.total, self.desc = total, desc
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.count = 0
        self.samples = 0
        self.start = self._last = time.perf_counter()
        self.min_interval = min_interval
        self.fields = {}

    def update(self, samples, **fields):
        """One step done, covering ``samples`` examples; ``fields`` are shown (e.g. loss=0.1)."""
        self.count += 1
        self.samples += samples
        self.fields.update(fields)
        now = time.perf_counter()
        if self.tty and (now - self._last >= self.min_interval or self.count == self.total):
            self._last = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def close(self, **fields):
        """End the bar, showing ``fields`` (e.g. the evaluation's metrics) after the running ones."""
        self.fields.update(fields)
        line = self._line(time.perf_counter())
        self.stream.write(("\r" + line + "\n") if self.tty else line + "\n")
        self.stream.flush()

    def rate(self):
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def _line(self, now):
        width = 20
        filled = int(width * self.count / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        shown = " ".join(f"{k} {_fmt(v)}" for k, v in self.fields.items())
        return f"{self.desc} [{bar}] {self.count}/{self.total} {shown} {self.rate():.0f} samples/s {now - self.start:.1f}s"


def _fmt(v):
    return f"{v:.4f}" if isinstance(v, float) else str(v)
