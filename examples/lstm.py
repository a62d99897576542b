"""Train a character-level LSTM on the shipped public-domain text (target: validation loss <= 1.9 nats/char).

    python examples/lstm.py [--device cpu|cuda] [--epochs N] [--resume]

The same as `tilegrad train lstm`. The model, data and training step are in
pkg/tilegrad/examples/chars.py; the loop (progress bar, checkpoints, resume) in
pkg/tilegrad/examples/runner.py.
"""
import sys

from tilegrad.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", "lstm"] + sys.argv[1:]))
