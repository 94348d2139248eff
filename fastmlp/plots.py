"""Figures. matplotlib is imported here only, with the non-interactive Agg backend."""

from __future__ import annotations

SPLIT_STYLE = {  # colour and line style: readable in colour and in grey scale
    "train": ("#1b6ca8", "-"),
    "valid": ("#d95f02", "--"),
    "test": ("#333333", ":"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history, path, title=None):
    """Error (%) and mean loss per epoch for train, valid and test, in two panels, saved to ``path``.

    The train curve is the re-evaluation after each epoch when the history has it
    (``eval_train=True``), else the running mean over the epoch's minibatches.
    """
    from .io import atomic_open

    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [e + 1 for e in history["epoch"]]
    train_key = "train_eval" if any(x is not None for x in history["train_eval_error"]) else "train"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, label in ((axes[0], "error", "error (%)"), (axes[1], "loss", "mean cross-entropy")):
        for split in ("train", "valid", "test"):
            key = f"{train_key if split == 'train' else split}_{metric}"
            values = history[key]
            if all(x is None for x in values):
                continue
            colour, style = SPLIT_STYLE[split]
            name = split if split != "train" or train_key == "train_eval" else "train (running mean)"
            ax.plot(epochs, values, style, color=colour, lw=2, marker="o", ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("error rate")
    axes[1].set_title("loss")
    if title:
        fig.suptitle(title)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


# -- decision boundaries on 2-D, 2-class data ----------------------------------------------------
#: P(class 1) = 0, 0.5, 1: a diverging map whose two ends also differ in lightness, so the
#: two predicted regions stay apart in grey scale (the 0.5 contour marks the boundary itself)
REGION_COLOURS = ("#2f6ea8", "#f7f7f7", "#f9c98a")
#: the two classes differ in marker, colour and lightness (dark circles, light triangles)
CLASS_STYLE = (
    {"marker": "o", "color": "#08306b", "edgecolors": "white"},
    {"marker": "^", "color": "#e08214", "edgecolors": "#3d1f00"},
)


def _save_png(fig, path, dpi):
    """Save ``fig`` to ``path`` atomically as a 256-colour PNG: these figures hold few
    colours, and the palette makes the files several times smaller for the same look."""
    import io

    from PIL import Image  # a dependency of matplotlib

    from .io import atomic_open

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_open(path, "wb") as f:
        small.save(f, format="PNG", optimize=True)


def _region_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("fastmlp-regions", REGION_COLOURS)


def decision_boundaries(panels, path, suptitle=None, class_names=("class 0", "class 1"),
                        backend="numpy", resolution=250, margin=0.4):
    """A row of decision-boundary panels for 2-D, 2-class models, saved to ``path``.

    Parameters
    ----------
    panels : list of (model, X, y, title)
        a fitted :class:`fastmlp.MLP` with layers ``(2, d_h, 2)``, the points to draw
        ``X (n, 2)``, their labels ``y (n,)`` in {0, 1}, and the panel's title.
    class_names : the legend's names for labels 0 and 1.
    backend : the backend that evaluates ``predict_proba`` on the grid.
    resolution : grid points per axis.

    Each panel shows P(class 1) as filled contours over a grid covering the points, the
    0.5 contour line (the decision boundary) and the points on top, with equal axes.
    """
    import numpy as np
    from matplotlib.lines import Line2D

    if not panels:
        raise ValueError("panels must hold at least one (model, X, y, title)")
    for i, (model, X, y, _) in enumerate(panels):
        if model.layers[0] != 2 or model.layers[-1] != 2:
            raise ValueError(f"panels[{i}]: decision boundaries need a model with 2 inputs and "
                             f"2 classes, got layers {model.layers}")
        if np.ndim(X) != 2 or np.shape(X)[1] != 2 or len(X) != len(y):
            raise ValueError(f"panels[{i}]: X must be (n, 2) with one label per row, got X "
                             f"{np.shape(X)} and y {np.shape(y)}")
    plt = _pyplot()
    cmap = _region_cmap()
    levels = np.linspace(0.0, 1.0, 21)
    allX = np.concatenate([np.asarray(X, dtype=np.float64) for _, X, _, _ in panels])
    lo, hi = allX.min(axis=0) - margin, allX.max(axis=0) + margin
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([g0.ravel(), g1.ravel()])

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n + 1.2, 5.3), squeeze=False,
                             constrained_layout=True)
    axes = axes[0]
    filled = None
    for ax, (model, X, y, title) in zip(axes, panels):
        proba = model.predict_proba(grid, backend=backend)[:, 1].reshape(g0.shape)
        filled = ax.contourf(g0, g1, proba, levels=levels, cmap=cmap, vmin=0.0, vmax=1.0)
        ax.contour(g0, g1, proba, levels=[0.5], colors="black", linewidths=1.6)
        X, y = np.asarray(X), np.asarray(y)
        for label in (0, 1):
            pts = X[y == label]
            ax.scatter(pts[:, 0], pts[:, 1], s=16, alpha=0.8, linewidths=0.6,
                       **CLASS_STYLE[label])
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$ (standardized)")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("$x_2$ (standardized)")
    cbar = fig.colorbar(filled, ax=list(axes), shrink=0.75, pad=0.02)
    cbar.set_label("predicted P(class 1)")
    cbar.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
    handles = [Line2D([], [], linestyle="none", markersize=7, markerfacecolor=style["color"],
                      markeredgecolor=style["edgecolors"], marker=style["marker"], label=name)
               for style, name in zip(CLASS_STYLE, class_names)]
    handles.append(Line2D([], [], color="black", lw=1.6, label="decision boundary, P = 0.5"))
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    _save_png(fig, path, dpi=90)
    plt.close(fig)


# -- seconds per epoch -------------------------------------------------------------------------
def speed_bars(rows, path, title=None):
    """Seconds per epoch as horizontal bars on a log scale, saved to ``path``.

    Parameters
    ----------
    rows : list of dicts with ``label`` (str), ``seconds`` (float > 0), ``kind`` (one of
        "measured", "extrapolated", "reference") and an optional ``note`` printed beside
        the bar. "extrapolated" bars are hatched; "reference" bars (numbers published
        elsewhere, on other hardware) are grey and hatched differently.
    """
    import math

    from matplotlib.patches import Patch

    kinds = {
        "measured": {"color": "#1b6ca8", "hatch": None, "label": "measured here"},
        "extrapolated": {"color": "#7fb2d9", "hatch": "///",
                         "label": "measured here on a subset, extrapolated to the epoch"},
        "reference": {"color": "#bdbdbd", "hatch": "..",
                      "label": "the seed's published time (other hardware)"},
    }
    if not rows:
        raise ValueError("rows must hold at least one bar")
    for i, row in enumerate(rows):
        if row.get("kind") not in kinds:
            raise ValueError(f"rows[{i}]['kind'] must be one of {tuple(kinds)}, got {row.get('kind')!r}")
        if not (isinstance(row.get("seconds"), (int, float)) and math.isfinite(row["seconds"])
                and row["seconds"] > 0):
            raise ValueError(f"rows[{i}]['seconds'] must be a finite number > 0, "
                             f"got {row.get('seconds')!r}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.0, 0.55 * len(rows) + 2.4), constrained_layout=True)
    ypos = list(range(len(rows)))[::-1]
    for yv, row in zip(ypos, rows):
        style = kinds[row["kind"]]
        ax.barh(yv, row["seconds"], color=style["color"], hatch=style["hatch"],
                edgecolor="#222222", linewidth=0.8, height=0.65)
        seconds = row["seconds"]
        if seconds >= 1:
            text = f"{seconds:.1f} s"
        else:
            text = f"{seconds:.3g} s" if seconds >= 0.01 else f"{seconds * 1e3:.3g} ms"
        if row.get("note"):
            text += f"  {row['note']}"
        ax.text(seconds * 1.12, yv, text, va="center", fontsize=9)
    ax.set_yticks(ypos)
    ax.set_yticklabels([row["label"] for row in rows])
    ax.set_xscale("log")
    smallest = min(row["seconds"] for row in rows)
    largest = max(row["seconds"] for row in rows)
    ax.set_xlim(smallest / 2, largest * 12)
    ax.set_xlabel("seconds per epoch (log scale; shorter is faster)")
    ax.grid(axis="x", which="major", alpha=0.3)
    used = [k for k in kinds if any(row["kind"] == k for row in rows)]
    if title:
        ax.set_title(title, fontsize=10)
    fig.legend(handles=[Patch(facecolor=kinds[k]["color"], hatch=kinds[k]["hatch"],
                              edgecolor="#222222", label=kinds[k]["label"]) for k in used],
               loc="outside lower center", ncol=len(used), fontsize=9, frameon=False)
    _save_png(fig, path, dpi=90)
    plt.close(fig)


# -- several runs side by side -------------------------------------------------------------------
#: one colour per run (distinct in colour and, with the markers, in grey scale)
RUN_COLOURS = ("#1b6ca8", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d",
               "#333333")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def compare_curves(runs, path, title=None):
    """Learning curves of several runs in two panels, saved to ``path``: the error (%) and
    the mean loss per epoch, valid split solid (test when a run has no valid split) and
    train dashed (its re-evaluation when recorded, else the running mean).

    Parameters
    ----------
    runs : list of (label, History)
    """
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise ValueError("runs must hold at least one (label, history)")
    if len(runs) > len(RUN_COLOURS):
        raise ValueError(f"at most {len(RUN_COLOURS)} runs fit in one figure, got {len(runs)}")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for (label, history), colour, marker in zip(runs, RUN_COLOURS, RUN_MARKERS):
        epochs = [e + 1 for e in history["epoch"]]
        held = "valid" if any(x is not None for x in history["valid_error"]) else "test"
        train = ("train_eval" if any(x is not None for x in history["train_eval_error"])
                 else "train")
        for ax, metric in zip(axes, ("error", "loss")):
            values = history[f"{held}_{metric}"]
            if any(x is not None for x in values):
                ax.plot(epochs, values, "-", color=colour, marker=marker, ms=3, lw=2,
                        label=f"{label}: {held}")
            ax.plot(epochs, history[f"{train}_{metric}"], "--", color=colour, lw=1.2,
                    alpha=0.8, label=f"{label}: train")
        if history.best_epoch is not None:
            axes[0].axvline(history.best_epoch + 1, color=colour, lw=0.8, ls=":")
    for ax, label in zip(axes, ("error (%)", "mean cross-entropy")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import FormatStrFormatter

    axes[0].set_title("error rate")
    axes[1].set_title("loss (log scale)")
    axes[1].set_yscale("log")
    for axis in (axes[1].yaxis,):
        axis.set_major_formatter(FormatStrFormatter("%.2g"))
        axis.set_minor_formatter(FormatStrFormatter("%.2g"))
    axes[0].legend(fontsize=8, ncol=1 if len(runs) < 4 else 2)
    if title:
        fig.suptitle(title)
    _save_png(fig, path, dpi=100)
    plt.close(fig)


# -- a hyper-parameter search ----------------------------------------------------------------------
def sweep_scores(rows, grid, path, title=None, names=None):
    """Mean cross-validated accuracy against each hyper-parameter, one panel per parameter,
    saved to ``path``.

    Each candidate is a dot above its value of the panel's parameter, with its standard
    deviation over the folds as an error bar; the line joins the best candidate of each
    value. Values are categories, in the grid's order.

    Parameters
    ----------
    rows : list of dicts with ``mean_accuracy``, ``std_accuracy`` and ``params`` (name ->
        value), as :class:`fastmlp.sweep.SweepResult` holds them (failed fits: NaN, left out)
    grid : dict, name -> list of values
    names : the parameters to draw (default: those of ``grid`` with more than one value, or
        its first one)
    """
    import math

    from .sweep import format_value

    names = list(names or [n for n, values in grid.items() if len(values) > 1] or list(grid)[:1])
    scored = [row for row in rows if not math.isnan(row["mean_accuracy"])]
    if not scored:
        raise ValueError("rows holds no scored candidate (every fit failed)")
    plt = _pyplot()
    columns = min(3, len(names))
    lines = -(-len(names) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.6 * lines + 0.4),
                             squeeze=False, sharey=True, constrained_layout=True)
    for ax, name in zip(axes.flat, names):
        values = [repr(value) for value in grid[name]]
        groups = {value: [] for value in values}
        for row in scored:
            groups[repr(row["params"][name])].append(row)
        best, label = [], "a candidate (± std over the folds)"
        for x, value in enumerate(values):
            group = groups[value]
            for j, row in enumerate(group):        # spread the candidates of one value
                dx = (j - (len(group) - 1) / 2) * min(0.5 / max(len(group), 1), 0.08)
                ax.errorbar(x + dx, row["mean_accuracy"], yerr=row["std_accuracy"], fmt="o",
                            ms=4, color=SPLIT_STYLE["train"][0], ecolor="#7fb2d9", alpha=0.8,
                            label=label)
                label = None
            best.append(max((row["mean_accuracy"] for row in group), default=math.nan))
        ax.plot(range(len(values)), best, "-", color=SPLIT_STYLE["valid"][0], lw=2,
                marker="D", ms=5, label="best of each value")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([format_value(value) for value in grid[name]])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean accuracy over the folds")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    _save_png(fig, path, dpi=100)
    plt.close(fig)
