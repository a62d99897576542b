"""tilegrad: a deep-learning tensor engine with hand-written kernels."""
__version__ = "0.1.0"
