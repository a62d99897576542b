"""The ``tilegrad`` command line (``tilegrad.cli.main:main``)."""
