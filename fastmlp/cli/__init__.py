"""The ``fastmlp`` command line: one module per command.

Each command module has ``add(subparsers)``, which declares its arguments, and ``run(args)``,
which does the work; :func:`main` dispatches and turns the errors a user can cause into a
message and an exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys

from . import bench, compare, gradcheck, info, reproduce, sweep, train

DESCRIPTION = """\
Train small multilayer perceptrons on the CPU, from first principles and fast.
A model is input -> hidden layers (relu, tanh, logistic or identity) -> softmax, trained
by minibatch SGD, momentum, Nesterov or Adam on the cross-entropy plus elastic-net
penalties, with hand-written gradients."""

EPILOG = """\
examples:
  fastmlp train --data fashion-mnist --out runs/fmnist
  fastmlp train --data fashion-mnist --hidden 256 128 --activation tanh --init glorot \\
                --optimizer adam --lr 1e-3 --early-stopping --out runs/deep
  fastmlp train --data circles --hidden 20 --batch-size 16 --lr 0.5 --epochs 30 --out runs/circles
  fastmlp train --data my-points.txt --out runs/mine   (rows: x1 x2 ... label)
  fastmlp gradcheck                                     (the seed's gradient checks)
  fastmlp gradcheck --hidden 8 6 --activation tanh
  fastmlp compare runs/sgd runs/adam --out curves.png  (learning curves side by side)
  fastmlp sweep --data fashion-mnist --hidden 64 "256 128" --lr 0.05 0.1 --train-size 20000
                                                   (a grid search on a local Dask cluster)

Run 'fastmlp COMMAND --help' for a command's options."""

#: the commands, in the order --help lists them
COMMANDS = (train, compare, sweep, info, gradcheck, reproduce, bench)

#: numbers that start with '-' are values, not options, also in scientific notation
#: (argparse's own pattern misses "-1e-6")
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _accept_negative_numbers(parser):
    parser._negative_number_matcher = _NEGATIVE_NUMBER
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _accept_negative_numbers(sub)


def build_parser():
    from .. import __version__

    parser = argparse.ArgumentParser(prog="fastmlp", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    _accept_negative_numbers(parser)
    return parser


def main(argv=None):
    from .._signals import Terminated
    from ..model import ModelFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except Terminated as exc:
        print(f"fastmlp: stopped ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    except ModelFileError as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
