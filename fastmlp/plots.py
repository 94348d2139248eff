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
