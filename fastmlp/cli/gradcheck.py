"""``fastmlp gradcheck``: hand-written gradients against finite differences and the loop backend."""

from __future__ import annotations

import sys

from ._arguments import (Formatter, activation, add_network_arguments, int_at_least,
                         load_data, nonneg_float, penalties, positive_float)


def add(sub):
    from ..backends import BACKENDS
    from ..gradcheck import EPS_RANGE, SEED_CASE

    seed = SEED_CASE
    p = sub.add_parser(
        "gradcheck", formatter_class=Formatter,
        help="check a backend's gradients by finite differences and against the loop backend",
        description="Compare a backend's hand-written gradients with centered finite "
                    "differences of J (in float64), per parameter, on the first K rows of the "
                    "train split, then with the loop backend's gradients on the same rows. "
                    "The defaults are the seed's checks: layers (2, 2, 2), relu, every "
                    "penalty 0.001, float64, K = 1 and 10 on two circles. Kinks (ReLU "
                    "pre-activations and L1-penalized weights within eps of 0) are counted "
                    "per layer. Exits with status 1 when a check fails its tolerance. Every "
                    "parameter is differenced (two evaluations of J each): keep models small.")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="backend whose gradients are checked (compared with loop; loop itself "
                        "is compared with numpy)")
    p.add_argument("--data", default="circles",
                   help="'circles', 'fashion-mnist' or a text file of rows 'x1 x2 ... label'")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST files")
    add_network_arguments(p, hidden_default=seed["hidden"])
    p.add_argument("--batch-size", type=int_at_least(1), nargs="+",
                   default=list(seed["batch_sizes"]), metavar="K",
                   help="one or more minibatch sizes (the first K train rows)")
    p.add_argument("--l1", type=nonneg_float, nargs="+", default=[seed["l1"]], metavar="L",
                   help="L1 penalty: one value for every weight matrix, or one per matrix")
    p.add_argument("--l2", type=nonneg_float, nargs="+", default=[seed["l2"]], metavar="L",
                   help="L2 penalty: one value for every weight matrix, or one per matrix")
    p.add_argument("--dtype", choices=("float32", "float64"), default=seed["dtype"],
                   help="floating-point type of the weights and of every computation")
    p.add_argument("--seed", type=int_at_least(0), default=seed["seed"],
                   help="seeds the data split and the initial weights")
    p.add_argument("--eps", type=positive_float, default=seed["eps"],
                   help=f"finite-difference step ({EPS_RANGE[0]:g} to {EPS_RANGE[1]:g})")
    p.add_argument("--rtol", type=positive_float, default=None,
                   help="tolerance of the finite-difference check (default 1e-6 in float64, "
                        "1e-4 in float32)")
    p.add_argument("--wrt-input", action="store_true", help="also check dJ/dX")
    p.set_defaults(run=run)


def run(args):
    from ..gradcheck import cli_report

    data = None if args.data == "circles" else load_data(args.data, args.seed, args.data_dir).train
    text, failures = cli_report(
        backend=args.backend, data=data, source=f"{args.data}, train split, standardized",
        hidden=tuple(args.hidden), activation=activation(args.activation), init=args.init,
        batch_sizes=tuple(args.batch_size), l1=penalties(args.l1, "--l1"),
        l2=penalties(args.l2, "--l2"), dtype=args.dtype, seed=args.seed, eps=args.eps,
        rtol=args.rtol, wrt_input=args.wrt_input)
    print(text)
    if failures:
        which = ", ".join(msg.split(":")[0] for msg in failures)
        print(f"fastmlp: {len(failures)} gradient check(s) failed their tolerance: {which}",
              file=sys.stderr)
        return 1
    return 0
