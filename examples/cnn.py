"""Train a CNN classifier on the 8x8 handwritten digits (target: test accuracy >= 0.98).

    python examples/cnn.py [--device cpu|cuda] [--epochs N] [--resume]

The same as `tilegrad train cnn`. The model, data and training step are in
pkg/tilegrad/examples/digits.py; the loop (progress bar, checkpoints, resume) in
pkg/tilegrad/examples/runner.py.
"""
import sys

from tilegrad.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", "cnn"] + sys.argv[1:]))
