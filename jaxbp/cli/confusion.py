"""The confusion matrix of a classifier's predictions, written to a PNG file.

Counted by :func:`sklearn.metrics.confusion_matrix` and drawn by
:class:`sklearn.metrics.ConfusionMatrixDisplay` on an object-oriented figure (no
``pyplot`` state); the figure comes from :func:`confusion_figure`, which the tests inspect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxbp.cli.plots import class_ids, save_figure

__all__ = ["confusion_figure", "plot_confusion_matrix"]


def _confusion(
    y_true, y_pred, *, n_classes: int | None = None, labels: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """The confusion matrix (rows true, columns predicted), its class ids and display labels."""
    from sklearn.metrics import confusion_matrix

    t, p = class_ids(y_true, "y_true"), class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    if labels is not None:
        labels = [str(s) for s in labels]
        if n_classes is None:
            n_classes = len(labels)
        elif len(labels) != int(n_classes):
            raise ValueError(f"{len(labels)} labels given for n_classes={n_classes}")
    if n_classes is not None:
        classes = np.arange(int(n_classes))
        bad = np.setdiff1d(np.union1d(t, p), classes)
        if bad.size:
            raise ValueError(f"class ids {bad.tolist()} outside 0..{int(n_classes) - 1}")
    else:
        classes = np.union1d(t, p)
    return confusion_matrix(t, p, labels=classes), classes, labels


def confusion_figure(
    y_true, y_pred, *, n_classes: int | None = None, labels: Sequence | None = None
) -> tuple[Figure, np.ndarray]:
    from sklearn.metrics import ConfusionMatrixDisplay

    cm, classes, labels = _confusion(y_true, y_pred, n_classes=n_classes, labels=labels)
    k = classes.size
    size = min(4.0 + 0.45 * k, 14.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    display = ConfusionMatrixDisplay(
        cm, display_labels=labels if labels is not None else [str(c) for c in classes]
    )
    display.plot(
        ax=ax,
        cmap="Blues",
        values_format="d",
        colorbar=True,
        include_values=k <= 30,
        xticks_rotation=45 if k > 10 else "horizontal",
    )
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else float("nan")
    ax.set_title(f"Confusion matrix (n = {total}, accuracy {accuracy:.1%})")
    return fig, cm


def plot_confusion_matrix(
    y_true, y_pred, path: str | Path, *, n_classes: int | None = None, labels=None
) -> Path:
    """Plot the confusion matrix of integer class predictions (rows true, columns predicted).

    Computed by :func:`sklearn.metrics.confusion_matrix` and drawn by
    :class:`sklearn.metrics.ConfusionMatrixDisplay` on an object-oriented figure.

    Args:
        y_true: (n,) class ids, or (n, K) one-hot / score rows (reduced by argmax).
        y_pred: same, predicted.
        path: file to write.
        n_classes: when given, the classes are 0..n_classes-1 (absent ones get empty
            rows and columns); otherwise the sorted union of the ids seen.
        labels: display names of the classes, in class-id order; implies
            ``n_classes = len(labels)`` when ``n_classes`` is not given.

    Returns:
        The path written.
    """
    fig, _ = confusion_figure(y_true, y_pred, n_classes=n_classes, labels=labels)
    return save_figure(fig, path)
