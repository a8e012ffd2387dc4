"""Tests for jaxbp.cli.plots: valid, non-blank PNGs, and figures that show what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from sklearn.metrics import confusion_matrix

from jaxbp.cli import confusion, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, expected: Path) -> np.ndarray:
    """``path`` is the returned Path, a PNG with RGB(A) pixels that are not all one colour."""
    assert isinstance(path, Path)
    assert path == expected
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] > 100 and img.shape[1] > 100
    rgb = img[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 10, "image is (nearly) a single colour"
    return img


def render(fig) -> np.ndarray:
    """Draw an OO figure with Agg and return its RGBA pixels (row 0 at the top)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def pixel_at(fig, ax, img, x, y) -> np.ndarray:
    """RGB of the rendered pixel at data coordinates (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    row = round(img.shape[0] - py)
    col = round(px)
    return img[row, col, :3].astype(int)


HISTORY = {
    "epoch": [1, 2, 3, 4, 5],
    "loss": [1.2, 0.8, 0.5, 0.3, 0.2],
    "val_loss": [1.3, 0.9, 0.6, 0.45, 0.4],
    "accuracy": [0.4, 0.6, 0.75, 0.85, 0.9],
    "val_accuracy": [0.35, 0.55, 0.7, 0.8, 0.82],
}


# --------------------------------------------------------------------------- backend


def test_import_does_not_change_backend_or_load_pyplot():
    # A fresh interpreter, so that the import really happens after the backend is read.
    code = (
        "import sys, matplotlib\n"
        "before = matplotlib.get_backend()\n"
        "import jaxbp.cli.plots\n"
        "assert matplotlib.get_backend() == before, (before, matplotlib.get_backend())\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print(before)\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svg"


def test_plotting_does_not_change_backend():
    import matplotlib

    before = matplotlib.get_backend()
    plots._loss_figure(HISTORY)
    confusion.confusion_figure([0, 1, 1], [0, 1, 0])  # sklearn's display imports pyplot
    assert matplotlib.get_backend() == before


# --------------------------------------------------------------------------- loss


def test_plot_loss_writes_png_and_accepts_str(tmp_path):
    history = {**HISTORY, "val_loss": [1.3, None, 0.6, None, 0.4]}  # validation every 2nd epoch
    out = plots.plot_loss(history, str(tmp_path / "loss.png"))
    assert_png(out, tmp_path / "loss.png")


def test_plot_loss_without_validation_creates_parent_folders(tmp_path):
    out = plots.plot_loss({"loss": [1.0, 0.5]}, tmp_path / "a" / "b" / "loss.png")
    assert_png(out, tmp_path / "a" / "b" / "loss.png")


@pytest.mark.parametrize(
    "val",
    [
        None,
        [None, None, None, None, None],
        [None, 0.9, None, 0.5, None],
        [1.3, 0.9, None, 0.4, 0.3],
    ],
)
def test_loss_validation_missing_or_partial(val):
    history = {"epoch": HISTORY["epoch"], "loss": HISTORY["loss"]}
    if val is not None:
        history["val_loss"] = val
    fig = plots._loss_figure(history)
    ax = fig.axes[0]
    n_finite = 0 if val is None else sum(v is not None for v in val)
    lines = ax.get_lines()
    assert len(lines) == (2 if n_finite else 1)
    if n_finite:
        assert len(lines[1].get_xdata()) == n_finite  # None entries are skipped
    assert ax.get_title() == "Loss"


def test_loss_scale_log_when_positive_linear_otherwise():
    assert plots._loss_figure(HISTORY).axes[0].get_yscale() == "log"
    assert plots._loss_figure({"loss": [1.0, 0.0]}).axes[0].get_yscale() == "linear"
    assert plots._loss_figure({"loss": [0.5, -0.1]}).axes[0].get_yscale() == "linear"
    # A non-positive validation loss also forces a linear axis.
    h = {"loss": [1.0, 0.5], "val_loss": [None, -2.0]}
    assert plots._loss_figure(h).axes[0].get_yscale() == "linear"


def test_loss_without_epoch_uses_one_based_epochs():
    ax = plots._loss_figure({"loss": [3.0, 2.0, 1.0]}).axes[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])


def test_loss_rejects_bad_history():
    with pytest.raises(ValueError, match="loss"):
        plots._loss_figure({"epoch": [1, 2]})
    with pytest.raises(ValueError, match="val_loss"):
        plots._loss_figure({"loss": [1.0, 0.5], "val_loss": [1.0]})


# --------------------------------------------------------------------------- accuracy


def test_plot_accuracy_png_and_percent_axis(tmp_path):
    history = {**HISTORY, "val_accuracy": [None, 0.55, None, 0.8, None]}
    out = plots.plot_accuracy(history, tmp_path / "acc.png")
    assert_png(out, tmp_path / "acc.png")
    fig = plots._accuracy_figure(HISTORY)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo <= 0.0 and hi >= 1.0 and hi - lo < 1.1
    assert ax.yaxis.get_major_formatter()(0.5, 0).startswith("50")
    assert ax.yaxis.get_major_formatter()(0.5, 0).endswith("%")
    assert len(ax.get_lines()) == 2


def test_accuracy_without_or_with_none_validation():
    h = {"accuracy": [0.5, 0.7, 0.9]}
    assert len(plots._accuracy_figure(h).axes[0].get_lines()) == 1
    h["val_accuracy"] = [None, 0.6, None]
    assert len(plots._accuracy_figure(h).axes[0].get_lines()) == 2


# --------------------------------------------------------------------------- decision regions


def test_decision_regions_follow_predict(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)

    def predict(Z):
        assert Z.ndim == 2 and Z.shape[1] == 2
        return (Z[:, 0] > 0).astype(int)

    out = plots.plot_decision_regions(predict, X, y, tmp_path / "dr.png", resolution=60)
    assert_png(out, tmp_path / "dr.png")

    # The saved image: left and right halves of the axes differ in colour. Sample the
    # rendered figure at data points away from the boundary (and any scatter marker).
    fig = plots._decision_regions_figure(predict, X, y, resolution=60)
    ax = fig.axes[0]
    ax.get_legend().remove()  # so that it cannot cover the sampled pixels
    img = render(fig)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < X[:, 0].min() and x1 > X[:, 0].max()  # grid covers X with a margin
    assert y0 < X[:, 1].min() and y1 > X[:, 1].max()
    ym = y1 - 0.02 * (y1 - y0)  # top margin strip: no data there
    left = pixel_at(fig, ax, img, x0 + 0.02 * (x1 - x0), ym)
    left2 = pixel_at(fig, ax, img, x0 + 0.25 * (x1 - x0), ym)
    right = pixel_at(fig, ax, img, x1 - 0.02 * (x1 - x0), ym)
    assert np.abs(left - right).sum() > 30, (left, right)
    assert np.abs(left - left2).sum() < 10, (left, left2)
    assert "100.0%" in ax.get_title()


def test_decision_regions_swapped_predictor_swaps_colours():
    X = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    y = np.array([0, 1, 0, 1])
    sides = []
    for flip in (False, True):
        fig = plots._decision_regions_figure(
            lambda Z, f=flip: ((Z[:, 0] > 0) ^ f).astype(int), X, y, resolution=40
        )
        ax = fig.axes[0]
        ax.get_legend().remove()
        img = render(fig)
        sides.append((pixel_at(fig, ax, img, -0.5, 0.0), pixel_at(fig, ax, img, 0.5, 0.0)))
    (l0, r0), (l1, r1) = sides
    np.testing.assert_allclose(l0, r1, atol=3)
    np.testing.assert_allclose(r0, l1, atol=3)
    assert np.abs(l0 - r0).sum() > 30


def test_decision_regions_pm1_labels_scores_and_title(tmp_path):
    X = np.array([[-1.0, 0.0], [1.0, 0.5], [-0.5, 1.0], [0.7, -1.0]])
    y = np.array([-1, 1, -1, 1])
    fig = plots._decision_regions_figure(
        lambda Z: np.where(Z[:, 0] > 0, 1, -1), X, y, title="XOR-ish", resolution=30
    )
    ax = fig.axes[0]
    assert ax.get_title() == "XOR-ish"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class -1", "class 1"]
    # (m, K) scores are reduced by argmax; n_classes fixes the legend's class set.
    scores = lambda Z: np.stack([-Z[:, 0], Z[:, 0], np.zeros(len(Z)) - 9], axis=1)  # noqa: E731
    out = plots.plot_decision_regions(
        scores, X, (y > 0).astype(int), tmp_path / "s.png", n_classes=3, resolution=30
    )
    assert_png(out, tmp_path / "s.png")


def test_decision_regions_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plots._decision_regions_figure(lambda Z: Z[:, 0] > 0, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="class ids"):
        plots._decision_regions_figure(
            lambda Z: np.full(len(Z), 5), np.eye(2), np.array([0, 1]), n_classes=2
        )
    with pytest.raises(ValueError, match="integer"):
        plots._decision_regions_figure(lambda Z: Z[:, 0] * 0.3, np.eye(2), np.array([0, 1]))


# --------------------------------------------------------------------------- regression fit


@pytest.mark.parametrize("column", [True, False])
def test_regression_fit(tmp_path, column):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=30)
    X = x[:, None] if column else x
    y = np.sin(x) + 0.1 * rng.normal(size=30)
    y = y[:, None] if column else y
    calls = []

    def target(G):
        calls.append(G.shape)
        return np.sin(G)  # (m, 1)

    def predict(G):
        calls.append(G.shape)
        return np.sin(G[:, 0]) * 0.9  # (m,)

    if column:
        out = plots.plot_regression_fit(predict, X, y, tmp_path / "fit.png", target=target)
        assert_png(out, tmp_path / "fit.png")
    fig = plots._regression_fit_figure(predict, X, y, target=target)
    assert calls and all(len(s) == 2 and s[1] == 1 for s in calls)  # always (m, 1) grids
    ax = fig.axes[0]
    target_line, fit_line = ax.get_lines()
    gx = fit_line.get_xdata()
    assert np.all(np.diff(gx) > 0) and len(gx) >= 100  # sorted, dense
    assert gx[0] < x.min() and gx[-1] > x.max()
    np.testing.assert_allclose(fit_line.get_ydata(), 0.9 * np.sin(gx), rtol=1e-6)
    np.testing.assert_allclose(target_line.get_ydata(), np.sin(gx), rtol=1e-6)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["data", "network fit", "target"]


def test_regression_fit_without_target_and_bad_shapes(tmp_path):
    X = np.linspace(-1, 1, 10)
    fig = plots._regression_fit_figure(lambda G: 2 * G, X, 2 * X, title="line")
    assert len(fig.axes[0].get_lines()) == 1
    assert fig.axes[0].get_title() == "line"
    with pytest.raises(ValueError, match="1-D inputs"):
        plots._regression_fit_figure(lambda G: G, np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match="predict"):
        plots._regression_fit_figure(lambda G: np.hstack([G, G]), X, X)
    with pytest.raises(ValueError, match="y must"):
        plots._regression_fit_figure(lambda G: G, X, np.zeros(9))


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts_match_sklearn():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, size=200))
    expected = confusion_matrix(y_true, y_pred)

    fig, cm = confusion.confusion_figure(y_true, y_pred)
    np.testing.assert_array_equal(cm, expected)
    # The numbers drawn in the cells are the counts, row-major (true × predicted).
    ax = fig.axes[0]
    cell_texts = [t for t in ax.texts if t.get_text().strip()]
    assert len(cell_texts) == 16
    drawn = np.zeros((4, 4), dtype=int)
    for t in cell_texts:
        col, row = (round(v) for v in t.get_position())
        drawn[row, col] = int(t.get_text())
    np.testing.assert_array_equal(drawn, expected)
    acc = np.trace(expected) / 200
    assert f"{acc:.1%}" in ax.get_title()


def test_confusion_matrix_n_classes_labels_and_one_hot(tmp_path):
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    fig, cm = confusion.confusion_figure(y_true, y_pred, n_classes=3)
    assert cm.shape == (3, 3) and cm[2].sum() == 0 and cm[:, 2].sum() == 0
    np.testing.assert_array_equal(cm, confusion_matrix(y_true, y_pred, labels=[0, 1, 2]))

    names = ["cat", "dog", "bird"]
    fig, cm = confusion.confusion_figure(np.eye(3)[y_true], y_pred, labels=names)
    assert cm.shape == (3, 3)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names

    out = confusion.plot_confusion_matrix(y_true, y_pred, str(tmp_path / "cm.png"), labels=names)
    assert_png(out, tmp_path / "cm.png")
    with pytest.raises(ValueError, match="labels"):
        confusion.confusion_figure(y_true, y_pred, n_classes=2, labels=names)
    with pytest.raises(ValueError, match="class ids"):
        confusion.confusion_figure(y_true, y_pred + 1, n_classes=2)
