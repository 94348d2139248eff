"""``fastmlp compare``: the learning curves of several runs in one figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._arguments import Formatter


def add(sub):
    p = sub.add_parser(
        "compare", formatter_class=Formatter,
        help="draw the learning curves of several runs (fastmlp train --out folders) together",
        description="Read RUN/history.json of each run written by 'fastmlp train --out RUN' "
                    "and draw their error and loss per epoch side by side (valid split solid, "
                    "train dashed), e.g. the same network trained with SGD, momentum and "
                    "Adam.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="folders written by fastmlp train --out (or history.json files)")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="one legend label per run (default: each run's optimizer and "
                        "learning rate)")
    p.add_argument("--title", default=None, help="the figure's title")
    p.add_argument("--out", required=True, metavar="PNG", help="the figure to write")
    p.set_defaults(run=run)


def _history(run):
    from ..training import History

    path = Path(run)
    if path.is_dir():
        path = path / "history.json"
    try:
        return History.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise FileNotFoundError(f"{run!r}: no history.json (is it a fastmlp train --out "
                                "folder?)") from None
    except ValueError as exc:           # not JSON, or not a history
        raise ValueError(f"{run!r}: {path} is not a fastmlp history: {exc}") from None


def _label(history):
    s = history.settings
    optimizer = s.get("optimizer", {}).get("name", "?")
    return f"{optimizer} lr={s.get('lr')}"


def run(args):
    from ..plots import compare_curves

    histories = [_history(r) for r in args.runs]
    labels = args.labels or [_label(h) for h in histories]
    if len(labels) != len(histories):
        raise ValueError(f"--labels gives {len(labels)} label(s) for {len(histories)} run(s)")
    title = args.title
    if title is None:
        s = histories[0].settings
        title = (f"layers {tuple(s.get('layers', ()))}, "
                 f"{'/'.join(s.get('activations', [])) or 'no hidden layer'}, "
                 f"K={s.get('batch_size')}, {s.get('dtype')}")
    compare_curves(list(zip(labels, histories)), args.out, title=title)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
