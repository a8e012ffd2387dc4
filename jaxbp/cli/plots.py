"""Plots of training runs and fitted two-layer networks, written straight to PNG files.

Every public function builds a :class:`matplotlib.figure.Figure` with the object-oriented
API (no ``pyplot`` state, no change to the user's backend), saves it and returns the path
written. The figure itself comes from a private ``_*_figure`` builder, which the tests
inspect.

Example:
    >>> import numpy as np
    >>> from jaxbp.cli import plots
    >>> history = {"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.2], "val_loss": [1.1, None, 0.3]}
    >>> plots.plot_loss(history, "/tmp/loss.png")  # doctest: +SKIP
    PosixPath('/tmp/loss.png')

The confusion matrix is drawn by ``jaxbp.cli.confusion``.

The 2-D plots (:func:`plot_decision_regions`, :func:`plot_regression_fit`) take data in
the network's input space (e.g. standardised) and a ``predict`` callable on that space,
such as ``lambda X: jaxbp.forward(net, params, X).argmax(-1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

__all__ = [
    "class_ids",
    "plot_accuracy",
    "plot_decision_regions",
    "plot_loss",
    "plot_regression_fit",
    "save_figure",
]

DPI = 100
_FIGSIZE = (6.4, 4.4)
_GRID = {"alpha": 0.3, "linewidth": 0.6}


# --------------------------------------------------------------------------- helpers


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` atomically (parent folders created); return it as a Path.

    The image is rendered in memory, then written by :func:`jaxbp.runs.files.write_file`
    (temp file, fsync, rename): a failed write leaves the earlier plot as it was.
    """
    import io

    from jaxbp.runs import files

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return files.write_file(path, buffer.getvalue(), overwrite=True, own_run=path.parent)


def _series(history: Mapping, key: str, n: int, *, required: bool) -> np.ndarray | None:
    """``history[key]`` as a float array of length ``n``; ``None`` entries become NaN.

    Returns ``None`` when the key is absent (or holds no finite value) and not required.
    """
    if key not in history or history[key] is None:
        if required:
            raise ValueError(f"history has no {key!r} entry; keys: {sorted(history)}")
        return None
    values = list(history[key])
    if len(values) != n:
        raise ValueError(f"history[{key!r}] has {len(values)} entries, expected {n}")
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if not required and not np.isfinite(out).any():
        return None
    return out


def _epochs_and(history: Mapping, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The x axis (``history["epoch"]`` or 1..n) and the required series ``history[key]``."""
    if key not in history:
        raise ValueError(f"history has no {key!r} entry; keys: {sorted(history)}")
    n = len(history[key])
    if n == 0:
        raise ValueError(f"history[{key!r}] is empty")
    if history.get("epoch") is not None:
        epochs = np.asarray(list(history["epoch"]), dtype=float)
        if epochs.shape != (n,):
            raise ValueError(f"history['epoch'] has {epochs.size} entries, expected {n}")
    else:
        epochs = np.arange(1, n + 1, dtype=float)
    return epochs, _series(history, key, n, required=True)


def _line_style(n: int) -> dict:
    """Markers only when there are few enough points to see them."""
    return {"marker": "o", "markersize": 3.5} if n <= 40 else {}


def _last_finite(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


def _class_colors(k: int) -> list:
    """``k`` distinct colours: tab10 / tab20 when they suffice, else sampled from turbo."""
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [colormaps["tab20"](i) for i in range(k)]
    return [colormaps["turbo"](t) for t in np.linspace(0.05, 0.95, k)]


def class_set(n_classes: int | None, *ids: np.ndarray) -> np.ndarray:
    """The classes to show: 0..n_classes−1 (ValueError for an id outside), else the ids seen."""
    seen = np.unique(np.concatenate(ids))
    if n_classes is None:
        return seen
    classes = np.arange(int(n_classes))
    bad = np.setdiff1d(seen, classes)
    if bad.size:
        raise ValueError(f"class ids {bad.tolist()} outside 0..{int(n_classes) - 1}")
    return classes


def class_ids(values, name: str) -> np.ndarray:
    """Labels or predictions as a 1-D integer array; one-hot / score rows become argmax."""
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2:
        a = a.argmax(axis=1)
    if a.ndim != 1:
        raise ValueError(f"{name} must be (n,) class ids or (n, K) scores, got shape {a.shape}")
    if a.dtype.kind == "b":
        return a.astype(int)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.rint(a)):
            raise ValueError(f"{name} must hold integer class ids, got non-integer values")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    return a.astype(int)


def _grid_dtype(X: np.ndarray) -> np.dtype:
    return X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)


def _padded_range(v: np.ndarray, frac: float = 0.1) -> tuple[float, float]:
    lo, hi = float(np.min(v)), float(np.max(v))
    pad = frac * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _as_column_output(out, m: int, what: str) -> np.ndarray:
    """A callable's output on an (m, 1) grid as a 1-D array of m values."""
    a = np.asarray(out, dtype=float)
    if a.size != m or a.ndim > 2 or (a.ndim == 2 and a.shape[1] != 1):
        raise ValueError(f"{what} must map an (m, 1) array to (m,) or (m, 1); got {a.shape}")
    return a.reshape(m)


# --------------------------------------------------------------------------- loss / accuracy


def _train_val_figure(history: Mapping, key: str, fmt: str):
    """A figure with the train series ``key`` and its ``val_`` twin, labelled with last values.

    Returns (fig, ax, train values, validation values or None).
    """
    epochs, train = _epochs_and(history, key)
    val = _series(history, f"val_{key}", train.size, required=False)
    fig = Figure(figsize=_FIGSIZE)
    ax = fig.add_subplot()
    style = _line_style(train.size)
    last = _last_finite(train)
    ax.plot(
        epochs,
        train,
        label="train" + (f" (last {last:{fmt}})" if last is not None else ""),
        **style,
    )
    if val is not None:
        ok = np.isfinite(val)  # validation may be logged on some epochs only
        last = _last_finite(val)
        ax.plot(epochs[ok], val[ok], label=f"validation (last {last:{fmt}})", **style)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax, train, val


def _loss_figure(history: Mapping) -> Figure:
    fig, ax, loss, val = _train_val_figure(history, "loss", ".4g")
    values = np.concatenate([loss, val if val is not None else []])
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite > 0):
        ax.set_yscale("log")
    ax.set_title("Loss")
    ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.grid(True, which="major", **_GRID)
    ax.legend()
    return fig


def plot_loss(history: dict, path: str | Path) -> Path:
    """Plot training (and validation) loss against epoch and save it as an image.

    Args:
        history: lists per key: ``"loss"`` (train loss per epoch, required), ``"epoch"``
            (optional; 1..n when absent) and ``"val_loss"`` (optional; ``None`` entries,
            e.g. epochs without validation, are skipped). The y axis is logarithmic when
            every finite loss is > 0, linear otherwise.
        path: file to write (format from the suffix, e.g. ``.png``).

    Returns:
        The path written, as a :class:`pathlib.Path`.
    """
    return save_figure(_loss_figure(history), path)


def _accuracy_figure(history: Mapping) -> Figure:
    fig, ax, _, _ = _train_val_figure(history, "accuracy", ".1%")
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_title("Accuracy")
    ax.set_ylabel("accuracy")
    ax.grid(True, **_GRID)
    ax.legend(loc="lower right")
    return fig


def plot_accuracy(history: dict, path: str | Path) -> Path:
    """Plot training (and validation) accuracy against epoch, y axis in percent.

    Args:
        history: lists per key: ``"accuracy"`` (train, fractions in [0, 1], required),
            ``"epoch"`` (optional) and ``"val_accuracy"`` (optional; ``None`` entries skipped).
        path: file to write.

    Returns:
        The path written.
    """
    return save_figure(_accuracy_figure(history), path)


# --------------------------------------------------------------------------- decision regions


def _decision_regions_figure(
    predict: Callable,
    X,
    y,
    *,
    n_classes: int | None = None,
    resolution: int = 200,
    title: str | None = None,
) -> Figure:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision regions need 2-D inputs X of shape (n, 2), got {X.shape}")
    y = class_ids(y, "y")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if int(resolution) < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    resolution = int(resolution)

    (x0, x1), (y0, y1) = _padded_range(X[:, 0]), _padded_range(X[:, 1])
    dtype = _grid_dtype(X)
    gx = np.linspace(x0, x1, resolution, dtype=dtype)
    gy = np.linspace(y0, y1, resolution, dtype=dtype)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    pred = class_ids(predict(grid), "predict(grid)")
    if pred.shape[0] != grid.shape[0]:
        raise ValueError(f"predict returned {pred.shape[0]} values for {grid.shape[0]} points")

    # Class values → colour indices 0..k-1. With n_classes the ids are 0..n_classes-1;
    # otherwise any integer labels (e.g. ±1) are allowed and sorted.
    classes = class_set(n_classes, y, pred)
    k = classes.size
    colors = _class_colors(k)
    cmap = ListedColormap(colors)
    norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)

    fig = Figure(figsize=(6.0, 5.2))
    ax = fig.add_subplot()
    regions = np.searchsorted(classes, pred).reshape(xx.shape)
    ax.contourf(xx, yy, regions, levels=np.arange(k + 1) - 0.5, cmap=cmap, norm=norm, alpha=0.35)
    for i, c in enumerate(classes):
        mask = y == c
        if mask.any():
            ax.scatter(
                X[mask, 0],
                X[mask, 1],
                color=colors[i],
                edgecolors="black",
                linewidths=0.5,
                s=22,
                label=f"class {c}",
            )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    accuracy = np.mean(class_ids(predict(X.astype(dtype)), "predict(X)") == y)
    ax.set_title(title if title is not None else f"Decision regions (accuracy {accuracy:.1%})")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(True, **_GRID)
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return fig


def plot_decision_regions(
    predict: Callable,
    X,
    y,
    path: str | Path,
    *,
    n_classes: int | None = None,
    resolution: int = 200,
    title: str | None = None,
) -> Path:
    """Draw a classifier's predicted classes over the plane, with the data on top.

    Args:
        predict: maps an (m, 2) float array to (m,) integer class ids ((m, K) scores
            are reduced by argmax). Called on a ``resolution`` × ``resolution`` grid
            covering ``X`` with a 10 % margin, and on ``X`` for the accuracy in the title.
        X: (n, 2) inputs, in the network's input space (e.g. standardised).
        y: (n,) integer labels (any integers, e.g. ±1) or (n, K) one-hot rows.
        path: file to write.
        n_classes: number of classes when ids are 0..n_classes-1, so that colours stay
            the same across plots even when a class is absent; inferred otherwise.
        resolution: grid points per axis.
        title: figure title; by default "Decision regions" and the accuracy on ``X``.

    Returns:
        The path written.
    """
    fig = _decision_regions_figure(
        predict, X, y, n_classes=n_classes, resolution=resolution, title=title
    )
    return save_figure(fig, path)


# --------------------------------------------------------------------------- regression fit


def _regression_fit_figure(
    predict: Callable,
    X,
    y,
    *,
    target: Callable | None = None,
    title: str | None = None,
    n_grid: int = 400,
) -> Figure:
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[1] == 1:
        x = X[:, 0]
    elif X.ndim == 1:
        x = X
    else:
        raise ValueError(
            f"regression fit needs 1-D inputs X of shape (n,) or (n, 1), got {X.shape}"
        )
    y = np.asarray(y, dtype=float)
    if y.size != x.size or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(f"y must have shape ({x.size},) or ({x.size}, 1), got {y.shape}")
    y = y.reshape(-1)

    lo, hi = _padded_range(x, frac=0.05)
    grid = np.linspace(lo, hi, n_grid, dtype=_grid_dtype(X))[:, None]  # sorted, (m, 1)

    fig = Figure(figsize=_FIGSIZE)
    ax = fig.add_subplot()
    ax.scatter(x, y, s=14, color="tab:blue", alpha=0.6, edgecolors="none", label="data")
    if target is not None:
        t = _as_column_output(target(grid), n_grid, "target")
        ax.plot(grid[:, 0], t, color="black", linestyle="--", linewidth=1.5, label="target")
    fit = _as_column_output(predict(grid), n_grid, "predict")
    ax.plot(grid[:, 0], fit, color="tab:red", linewidth=2.0, label="network fit")
    mse = float(
        np.mean(
            (_as_column_output(predict(x[:, None].astype(grid.dtype)), x.size, "predict") - y) ** 2
        )
    )
    ax.set_xlim(lo, hi)
    ax.set_title(title if title is not None else f"Regression fit (MSE {mse:.3g})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(True, **_GRID)
    ax.legend(loc="best")
    return fig


def plot_regression_fit(
    predict: Callable,
    X,
    y,
    path: str | Path,
    *,
    target: Callable | None = None,
    title: str | None = None,
) -> Path:
    """Plot 1-D regression data, the target function and the network's fit.

    Args:
        predict: maps an (m, 1) array to (m,) or (m, 1) predictions; drawn as a line on a
            sorted grid of 400 points covering ``X`` with a 5 % margin.
        X: (n, 1) or (n,) inputs in the network's input space.
        y: (n,) or (n, 1) targets.
        path: file to write.
        target: optional true function, same signature as ``predict``, drawn dashed.
        title: figure title; by default "Regression fit" and the MSE on the data.

    Returns:
        The path written.
    """
    return save_figure(_regression_fit_figure(predict, X, y, target=target, title=title), path)
