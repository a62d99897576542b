"""Train an autoencoder on the 8x8 handwritten digits (target: test MSE <= 0.03).

    python examples/autoencoder.py [--device cpu|cuda] [--epochs N] [--resume]

The same as `tilegrad train autoencoder`. The model, data and training step are in
pkg/tilegrad/examples/digits.py; the loop (progress bar, checkpoints, resume) in
pkg/tilegrad/examples/runner.py.
"""
import sys

from tilegrad.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", "autoencoder"] + sys.argv[1:]))
