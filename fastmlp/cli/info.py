"""``fastmlp info``: what fastmlp finds on this machine, as JSON."""

from __future__ import annotations

import json
import sys


def add(sub):
    p = sub.add_parser("info", help="print the version, backends and data location as JSON",
                       description="Print what fastmlp finds on this machine, as JSON.")
    p.set_defaults(run=run)


def run(args):
    import numpy as np

    from .. import __version__, datasets
    from ..backends import BACKENDS, fastest_backend

    folder = datasets.fashion_mnist_dir()
    print(json.dumps({
        "fastmlp": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "backends": list(BACKENDS), "fastest_backend": fastest_backend(),
        "fashion_mnist": str(folder) if folder else None,
    }, indent=2))
    return 0
