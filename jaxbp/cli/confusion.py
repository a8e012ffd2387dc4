"""The confusion matrix of a classifier's predictions, written to a PNG file.

Counted with NumPy and drawn with matplotlib on an object-oriented figure (no ``pyplot``
state), in the layout of scikit-learn's ``ConfusionMatrixDisplay`` (whose import would
add ~0.7 s to every ``jaxbp train``); the tests check the counts against
``sklearn.metrics.confusion_matrix``. The figure comes from :func:`confusion_figure`,
which the tests inspect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from jaxbp.cli.plots import class_ids, class_set, save_figure

__all__ = ["confusion_figure", "plot_confusion_matrix"]


def _confusion(
    y_true, y_pred, *, n_classes: int | None = None, labels: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """The confusion matrix (rows true, columns predicted), its class ids and display labels."""
    t, p = class_ids(y_true, "y_true"), class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    if labels is not None:
        labels = [str(s) for s in labels]
        if n_classes is None:
            n_classes = len(labels)
        elif len(labels) != int(n_classes):
            raise ValueError(f"{len(labels)} labels given for n_classes={n_classes}")
    classes = class_set(n_classes, t, p)
    k = classes.size
    cm = np.bincount(np.searchsorted(classes, t) * k + np.searchsorted(classes, p), minlength=k * k)
    return cm.reshape(k, k), classes, labels


def confusion_figure(
    y_true, y_pred, *, n_classes: int | None = None, labels: Sequence | None = None
) -> tuple[Figure, np.ndarray]:
    """The confusion matrix drawn as a heat map with its counts, and the matrix itself."""
    cm, classes, labels = _confusion(y_true, y_pred, n_classes=n_classes, labels=labels)
    k = classes.size
    names = labels if labels is not None else [str(c) for c in classes]
    size = min(4.0 + 0.45 * k, 14.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(cm, interpolation="nearest", cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax)
    if k <= 30:
        light = cm.max() / 2 if cm.size else 0
        for (row, col), count in np.ndenumerate(cm):
            color = "white" if count > light else "black"
            ax.text(col, row, f"{count:d}", ha="center", va="center", color=color)
    ax.set_xticks(range(k), names, rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else float("nan")
    ax.set_title(f"Confusion matrix (n = {total}, accuracy {accuracy:.1%})")
    return fig, cm


def plot_confusion_matrix(
    y_true, y_pred, path: str | Path, *, n_classes: int | None = None, labels=None
) -> Path:
    """Plot the confusion matrix of integer class predictions (rows true, columns predicted).

    Counted with NumPy and drawn with matplotlib on an object-oriented figure.

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
