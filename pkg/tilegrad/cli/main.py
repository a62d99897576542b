"""``tilegrad``: the command line. ``tilegrad COMMAND --help`` lists a command's options:
``bench`` (throughput against peers), ``doctor`` (what is built and found), ``parity`` (error of
every op against the float64 reference), ``train`` (train an example model)."""
import argparse
import sys

from . import bench, doctor, parity, train


def build_parser():
    parser = argparse.ArgumentParser(prog="tilegrad", description="tilegrad: a deep-learning tensor engine.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench.add_parser(commands)
    doctor.add_parser(commands)
    parity.add_parser(commands)
    train.add_parser(commands)
    return parser


def _version():
    from tilegrad import __version__
    return __version__


def main(argv=None):
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
