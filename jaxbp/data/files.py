"""User data: CSV and NPZ files read into a :class:`~jaxbp.data.dataset.Dataset`.

:func:`from_csv` and :func:`from_npz` read labelled data (the task, classification
or regression, is inferred from the labels unless given); :func:`read_features`
reads inputs alone, for prediction; :func:`csv_columns` lists a CSV header.
Problems a user can fix raise :class:`~jaxbp.data.dataset.DataError`, naming the
file, the line or array entry, and what was expected.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from jaxbp.data.dataset import MIN_SAMPLES, TEST_FRACTION, DataError, Dataset, make_dataset

MAX_CLASSES = 20  # task inference: at most this many distinct integer labels means classes
INTEGRAL = "integral"
"""``task=INTEGRAL``: strings or integral labels with at most :data:`MAX_CLASSES` distinct
values are classes, anything else is regression, however few the rows (``jaxbp train``'s
rule when ``--head`` is not given)."""


def _encode_labels(y: np.ndarray, task: str | None, where: str):
    """Return (labels, task, n_classes, classes) for raw labels y (numbers or strings).

    Task inference (``task=None``): strings → classification; numbers → classification
    when integer-valued with at most 20 distinct values and fewer than n/2, else
    regression. Class labels map to ids 0..C−1 in sorted order.
    """
    if task not in (None, "classification", "regression", INTEGRAL):
        raise DataError(f"task must be 'classification', 'regression' or None, got {task!r}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    numeric = np.issubdtype(y.dtype, np.number)
    if numeric:
        y = y.astype(np.float64)
        integral = bool(np.all(y == np.round(y)))
    if task == INTEGRAL:  # the command's explicit rule: integral labels are classes
        few = not numeric or (y.ndim == 1 and integral and len(np.unique(y)) <= MAX_CLASSES)
        task = "classification" if few else "regression"
    if task is None:
        if not numeric:
            task = "classification"
        else:
            distinct = len(np.unique(y))
            few = y.ndim == 1 and integral and distinct <= MAX_CLASSES and distinct < len(y) / 2
            task = "classification" if few else "regression"
    if task == "regression":
        if not numeric:
            raise DataError(
                f"{where}: regression needs numeric labels, got {y.dtype} values "
                f"such as {y.flat[0].item()!r}"
            )
        return y.astype(np.float32), task, None, None
    if y.ndim != 1:
        raise DataError(
            f"{where}: classification needs one label per sample, shape (n,); got {y.shape}"
        )
    if numeric and not integral:
        bad = y[y != np.round(y)][0]
        raise DataError(
            f"{where}: classification needs integer or string labels, found {bad.item()!r} "
            "(use task='regression' for real-valued targets)"
        )
    classes, ids = np.unique(y, return_inverse=True)
    if numeric:
        classes = classes.astype(np.int64)
    if len(classes) < 2:
        raise DataError(
            f"{where}: only one class ({classes[0].item()!r}) in the labels; "
            "classification needs at least 2"
        )
    return ids.astype(np.int64), task, len(classes), classes


def _existing(path) -> Path:
    """``path`` as a Path, or DataError if it is not a regular file (a FIFO never blocks)."""
    from jaxbp.runs.files import check_regular

    path = Path(os.fspath(path))
    if not path.exists():
        raise DataError(f"data file {str(path)!r} not found")
    try:
        return check_regular(path, "data file")
    except (OSError, ValueError) as err:
        raise DataError(str(err)) from None


def _checked_npz(path) -> Path:
    """An .npz whose members fit in memory (declared sizes checked before inflating)."""
    from jaxbp.runs.files import check_npz

    path = _existing(path)
    try:
        return check_npz(path, what="data file")
    except ValueError as err:
        raise DataError(str(err)) from None


def _as_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path) -> tuple[Path, list[str], list[tuple[int, list[str]]]]:
    """Return (path, header, rows) of a CSV file: rows as (line number, stripped cells).

    Blank lines are skipped. The header is required and must name every column.
    """
    path = _existing(path)
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells):
                    rows.append((reader.line_num, cells))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text (CSV) file ({err.reason})") from err
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    (_, header), rows = rows[0], rows[1:]
    if all(_as_number(c) is not None for c in header):
        raise DataError(
            f"{path}: the first row {','.join(header)!r} looks like data; "
            "a header row naming the columns is required"
        )
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: header column {j + 1} has no name")
        if header.count(name) > 1:
            raise DataError(f"{path}: column name {name!r} appears more than once in the header")
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(cells)} fields, but the header has {len(header)}"
            )
    return path, header, rows


def _missing_cell(cell: str) -> bool:
    value = _as_number(cell)
    return cell == "" or (value is not None and not math.isfinite(value))


def _csv_column(path: Path, rows, j: int, name: str, *, numeric: bool) -> np.ndarray:
    """Column j as float64 (``numeric``) or, if any cell is not a number, as strings.

    Raises DataError for an empty or NaN/inf cell, and (``numeric``) for a
    non-numeric one, naming the column, the line and the value.
    """
    cells = [cells[j] for _, cells in rows]
    for (line, _), cell in zip(rows, cells, strict=True):
        if _missing_cell(cell):
            shown = "an empty cell" if cell == "" else f"the value {cell!r}"
            raise DataError(
                f"{path}, line {line}: column {name!r} has {shown}; missing or non-finite "
                "values are not supported (remove or fill those rows)"
            )
    values = [_as_number(c) for c in cells]
    if all(v is not None for v in values):
        return np.array(values, dtype=np.float64)
    if numeric:
        line, cell = next(
            (line, c) for (line, _), c, v in zip(rows, cells, values, strict=True) if v is None
        )
        raise DataError(
            f"{path}, line {line}: feature column {name!r} must be numeric, found {cell!r}"
        )
    return np.array(cells, dtype=str)


def quote_names(columns: list[str]) -> str:
    """Column names for a message: 'a', 'b', 'c'."""
    return ", ".join(repr(c) for c in columns)


def csv_columns(path) -> list[str]:
    """Return the column names in the header row of a CSV file."""
    return _read_csv(path)[1]


def from_csv(
    path,
    target: str,
    *,
    task: str | None = None,
    test_fraction: float = TEST_FRACTION,
    weight_column: str | None = None,
) -> Dataset:
    """Return a :class:`Dataset` from a CSV file with a header row.

    The column named ``target`` holds the labels; every other column is a feature
    and must be numeric. With ``task=None`` the task is inferred: string labels, or
    integer labels with at most 20 distinct values (and fewer than n/2), mean
    classification (ids 0..C−1 in the sorted order of the labels, kept in
    ``Dataset.classes``); anything else is regression. The split is fixed
    (``random_state=0``, stratified for classification). ``weight_column`` names a
    numeric column of sample weights (not a feature): ``Dataset.w_train``, ``w_test``.

    Example:
        ``from_csv("iris.csv", target="species")``
    """
    path, header, rows = _read_csv(path)
    if target is None:
        raise DataError(
            f"{path}: name the label column with target= (--target COLUMN); "
            f"columns are: {quote_names(header)}"
        )
    if target not in header:
        raise DataError(f"{path}: no column named {target!r}; columns are: {quote_names(header)}")
    if weight_column is not None and (weight_column not in header or weight_column == target):
        raise DataError(
            f"{path}: no weight column {weight_column!r} (other than the target); "
            f"columns are: {quote_names(header)}"
        )
    features = [name for name in header if name not in (target, weight_column)]
    if not features:
        raise DataError(f"{path}: only the target column {target!r}; no feature columns")
    if len(rows) < MIN_SAMPLES:
        raise DataError(f"{path}: needs at least {MIN_SAMPLES} data rows, got {len(rows)}")
    X = np.stack(
        [_csv_column(path, rows, header.index(c), c, numeric=True) for c in features], axis=1
    )
    raw = _csv_column(path, rows, header.index(target), target, numeric=False)
    y, task, n_classes, classes = _encode_labels(raw, task, f"{path}: target column {target!r}")
    weights = None
    if weight_column is not None:
        weights = _csv_column(path, rows, header.index(weight_column), weight_column, numeric=True)
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.any()):
            raise DataError(
                f"{path}: weight column {weight_column!r} must hold finite numbers >= 0, not all 0"
            )
    return make_dataset(
        path.stem, X, y, n_classes=n_classes, seed=0, test_fraction=test_fraction,
        classes=classes, weights=weights,
    )  # fmt: skip


def _first_bad(a: np.ndarray) -> str:
    """The index of the first non-finite entry of a, as text ``[i, j]``."""
    index = np.argwhere(~np.isfinite(a))[0]
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _read_npz(path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Return (path, X, y) from a .npz file, loaded without pickle."""
    path = _checked_npz(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive of arrays X and y")
    with archive:
        names = list(archive.files)
        for name in ("X", "y"):
            if name not in names:
                raise DataError(
                    f"{path}: no array named {name!r} (the file holds: "
                    f"{', '.join(names) or 'nothing'}); expected X (n, d) and y (n,)"
                )
        try:
            return path, archive["X"], archive["y"]
        except ValueError as err:  # object arrays need pickle
            raise DataError(
                f"{path}: holds object arrays, which need pickle ({err}); save X and y "
                "as numeric (or, for y, string) arrays"
            ) from err


def _npz_features(path: Path, X: np.ndarray) -> np.ndarray:
    """X of a .npz as float64 (n, d): numeric, finite; a 1-D X is one feature."""
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{path}: X must have shape (n, d), got {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(
            f"{path}: X must be numeric, got dtype {X.dtype} (e.g. {X.flat[0].item()!r})"
        )
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise DataError(f"{path}: X{_first_bad(X)} is NaN or inf; missing values are not supported")
    return X


def read_features(
    path, *, drop: str | None = None, columns: list[str] | tuple[str, ...] | None = None
) -> np.ndarray:
    """Raw (unstandardised) inputs X (n, d) for prediction, as float64.

    From a CSV with a header: the named ``columns`` in that order (the features a
    run was trained on, matched by name; other columns are ignored), or every
    column except ``drop`` (e.g. the training target) when ``columns`` is None.
    From a .npz: the array ``X`` (``y`` is not needed).
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix == ".csv":
        path, header, rows = _read_csv(path)
        if columns is not None:
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: the run's feature column {missing[0]!r} is missing; the run "
                    f"needs {quote_names(list(columns))}, the file has {quote_names(header)}"
                )
        columns = [c for c in header if c != drop] if columns is None else list(columns)
        if not rows or not columns:
            raise DataError(f"{path}: no feature rows or columns to predict on")
        return np.stack(
            [_csv_column(path, rows, header.index(c), c, numeric=True) for c in columns], axis=1
        )
    if suffix == ".npz":
        path = _checked_npz(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                if "X" not in archive.files:
                    raise DataError(
                        f"{path}: no array named 'X' (holds: {', '.join(archive.files)})"
                    )
                X = archive["X"]
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"{path}: not a readable .npz file of numeric arrays ({err})") from err
        return _npz_features(path, X)
    raise DataError(f"input {os.fspath(path)!r}: expected a .csv or .npz file")


def read_column(path, name: str) -> np.ndarray:
    """One numeric CSV column (e.g. the run's ``--weight-column``) as float64, by name."""
    path, header, rows = _read_csv(path)
    if name not in header:
        raise DataError(
            f"{path}: no column {name!r} (the run's); columns are: {quote_names(header)}"
        )
    return _csv_column(path, rows, header.index(name), name, numeric=True)


def read_labelled(
    path, *, target: str | None = None, columns: list[str] | tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw features X (n, d) float64 and raw labels y of a file, with no task inference.

    For evaluating a trained run: the run's schema, not the file, decides what the
    labels mean. From a CSV: ``columns`` by name (the run's features; others ignored),
    or every column but ``target`` in order; ``y`` is the ``target`` column (numbers, or
    strings if any cell is not a number). From a .npz: arrays ``X`` and ``y``.
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix == ".csv":
        path, header, rows = _read_csv(path)
        if target is None:
            raise DataError(
                f"{path}: name the label column with --target COLUMN; "
                f"columns are: {quote_names(header)}"
            )
        if target not in header:
            raise DataError(
                f"{path}: no label column {target!r} (the run's target); "
                f"columns are: {quote_names(header)}"
            )
        X = read_features(path, drop=target, columns=columns)
        return X, _csv_column(path, rows, header.index(target), target, numeric=False)
    if suffix == ".npz":
        path, X, y = _read_npz(path)
        X = _npz_features(path, X)
        if y.ndim == 0 or y.ndim > 2 or len(y) != len(X):
            raise DataError(f"{path}: y must have shape (n,) or (n, K), n={len(X)}; got {y.shape}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if np.issubdtype(y.dtype, np.number) and not np.isfinite(y).all():
            raise DataError(f"{path}: y{_first_bad(y)} is NaN or inf")
        return X, y
    raise DataError(f"data {os.fspath(path)!r}: expected a .csv or .npz file")


def from_npz(path, *, task: str | None = None, test_fraction: float = TEST_FRACTION) -> Dataset:
    """Return a :class:`Dataset` from a .npz file holding arrays ``X`` (n, d) and ``y``.

    ``y`` is (n,) (class labels, numbers or strings, or real targets) or (n, K)
    (regression). A 1-D ``X`` is read as one feature. Task inference, label
    mapping and split are those of :func:`from_csv`.

    Example:
        ``np.savez("data.npz", X=X, y=y); from_npz("data.npz")``
    """
    path, X, y = _read_npz(path)
    X = _npz_features(path, X)
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"{path}: y must have shape (n,) or (n, K), got {y.shape}")
    if len(y) != len(X):
        raise DataError(f"{path}: X has {len(X)} samples (rows) but y has {len(y)}")
    if len(X) < MIN_SAMPLES:
        raise DataError(f"{path}: needs at least {MIN_SAMPLES} samples, got {len(X)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if np.issubdtype(y.dtype, np.number) and not np.isfinite(y).all():
        raise DataError(f"{path}: y{_first_bad(y)} is NaN or inf; missing values are not supported")
    y, task, n_classes, classes = _encode_labels(y, task, f"{path}: y")
    return make_dataset(
        path.stem, X, y, n_classes=n_classes, seed=0, test_fraction=test_fraction, classes=classes
    )
