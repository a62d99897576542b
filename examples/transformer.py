"""Train a causal character-level Transformer on the shipped text, printing samples (target: validation loss <= 1.95).

    python examples/transformer.py [--device cpu|cuda] [--epochs N] [--resume]

The same as `tilegrad train transformer`. The model, data and training step are in
pkg/tilegrad/examples/chars.py; the loop (progress bar, checkpoints, resume) in
pkg/tilegrad/examples/runner.py.
"""
import sys

from tilegrad.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", "transformer"] + sys.argv[1:]))
