"""Loss-curve plots (matplotlib is an optional extra: ``pip install fastnn[plot]``).

The figure is drawn with matplotlib's object-oriented API on an Agg canvas: no window opens,
and the pyplot state and backend of the calling program are left untouched.
"""
from __future__ import annotations

import math
import os

__all__ = ["plot_history"]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install fastnn[plot]"
        ) from exc
    return Figure, FigureCanvasAgg


def _series(history, *names):
    """The first attribute of ``history`` among ``names`` as a list of floats (NaN for None)."""
    for name in names:
        values = getattr(history, name, None)
        if values is not None and len(values):
            return [math.nan if v is None else float(v) for v in values]
    return []


def _has_values(series):
    return any(not math.isnan(v) for v in series)


def plot_history(history, path, *, title=None):
    """Write a PNG of the training/validation loss and validation accuracy per epoch.

    Parameters
    ----------
    history : fastnn.History
        As returned by :func:`fastnn.fit` (per-epoch ``train_loss``, ``val_loss``,
        ``val_accuracy``).  Missing or all-NaN series are simply not drawn.
    path : str or os.PathLike
        Output file; written as PNG whatever its extension.
    title : str, optional
        Figure title (default: the number of epochs and the total training time).

    Returns
    -------
    str : the path written.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    train_loss = _series(history, "train_loss", "loss")
    val_loss = _series(history, "val_loss")
    val_acc = _series(history, "val_accuracy", "val_acc")
    train_acc = _series(history, "train_accuracy", "accuracy")
    seconds = _series(history, "seconds", "epoch_seconds")
    if not train_loss and not val_loss:
        raise ValueError("history has no recorded epochs to plot")

    show_acc = _has_values(val_acc) or _has_values(train_acc)
    fig = Figure(figsize=(10 if show_acc else 5.5, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if show_acc else 1, squeeze=False)[0]

    ax = axes[0]
    if train_loss:
        ax.plot(range(1, len(train_loss) + 1), train_loss, marker=".", label="training loss")
    if _has_values(val_loss):
        ax.plot(range(1, len(val_loss) + 1), val_loss, marker=".", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if all(v > 0 for v in train_loss + [v for v in val_loss if not math.isnan(v)]):
        from matplotlib.ticker import FormatStrFormatter, LogLocator

        ax.set_yscale("log")  # losses fall by orders of magnitude; label ticks plainly
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("loss")

    if show_acc:
        ax = axes[1]
        if _has_values(train_acc):
            ax.plot(range(1, len(train_acc) + 1), train_acc, marker=".", label="training accuracy")
        if _has_values(val_acc):
            ax.plot(range(1, len(val_acc) + 1), val_acc, marker=".", label="validation accuracy",
                    color="tab:green")
            best = max(v for v in val_acc if not math.isnan(v))
            ax.axhline(best, color="tab:green", alpha=0.3, linestyle="--")
            ax.annotate(f"best {best:.4f}", xy=(0.98, best), xycoords=("axes fraction", "data"),
                        xytext=(0, -4), textcoords="offset points", ha="right", va="top",
                        fontsize=9, color="tab:green")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title("accuracy")

    if title is None:
        n = max(len(train_loss), len(val_loss))
        title = f"{n} epoch{'s' * (n != 1)}"
        if seconds and _has_values(seconds):
            title += f", {sum(v for v in seconds if not math.isnan(v)):.2f} s of training"
    fig.suptitle(title)
    path = os.fspath(path)
    fig.savefig(path, format="png")
    return path
