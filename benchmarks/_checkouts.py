"""Running a fresh interpreter on one checkout of fastmlp (shared by the scripts that compare
two versions: ``numba_compile.py --compare-with`` and ``epoch_compare.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: the root of the checkout these scripts belong to
THIS_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_checkout(checkout, code, *args, env=None):
    """Run ``code`` (Python source printing one JSON line last) in a fresh interpreter that
    imports ``fastmlp`` from ``checkout`` (put first on ``PYTHONPATH``, and the working
    folder) with ``args`` as its ``sys.argv[1:]`` and ``env`` added to the environment;
    return the parsed line. A failing child stops the script with its error output."""
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join([checkout] + [p for p in env.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, cwd=checkout)
    if out.returncode:
        raise SystemExit(f"the child for {checkout} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
