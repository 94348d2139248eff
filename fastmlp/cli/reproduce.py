"""``fastmlp reproduce``: the seed's experiments as figures and numbers."""

from __future__ import annotations

import sys

from ._arguments import Formatter, writable_folder


def add(sub):
    from ..backends import BACKENDS, fastest_backend
    from ..reproduce import EXPERIMENTS

    p = sub.add_parser(
        "reproduce", formatter_class=Formatter,
        help="regenerate the seed's experiments as figures and numbers",
        description="Run the original study's experiments and write into OUT: gradcheck.txt, "
                    "boundaries-{hidden,epochs,weight-decay}.png (two circles), "
                    "learning-curves.png (Fashion-MNIST), speed.png (every backend) and "
                    "results.json (every number, the settings, the seeds and the machine). "
                    "Without Fashion-MNIST the experiments that need it are skipped, and said so.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and numbers")
    p.add_argument("--quick", action="store_true",
                   help="a short version for CI (a subset of Fashion-MNIST, 3 epochs, short "
                        "timings), stated in every title")
    p.add_argument("--backend", choices=BACKENDS, default=fastest_backend(),
                   help="backend of the trainings (the speed figure times every backend)")
    p.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=None, metavar="NAME",
                   help=f"run only these experiments ({', '.join(EXPERIMENTS)}); default all")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the data, splits, initializations and shuffles")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, "
                        "then /usr/share/datasets/fashion-mnist)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args):
    from ..reproduce import reproduce

    writable_folder(args.out)       # before any experiment runs, not after all of them
    results = reproduce(args.out, quick=args.quick, backend=args.backend, only=args.only,
                        seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress)
    done = ", ".join(results["experiments"]) or "nothing"
    print(f"fastmlp reproduce: wrote {done} into {args.out} (numbers in results.json) "
          f"in {results['wall_seconds']:.1f} s", file=sys.stderr)
    for name, why in results["skipped"].items():
        print(f"fastmlp reproduce: skipped {name}: {why}", file=sys.stderr)
    for name, why in results["failed"].items():
        print(f"fastmlp reproduce: FAILED {name}: {why}", file=sys.stderr)
    return 1 if results["failed"] else 0
