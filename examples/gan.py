"""Train a GAN on a 2-D mixture of 8 Gaussians (target: generated samples cover all 8 modes).

    python examples/gan.py [--device cpu|cuda] [--epochs N] [--resume]

The same as `tilegrad train gan`. The model, data and training step are in
pkg/tilegrad/examples/gan.py; the loop (progress bar, checkpoints, resume) in
pkg/tilegrad/examples/runner.py.
"""
import sys

from tilegrad.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", "gan"] + sys.argv[1:]))
