"""Data sets by name or path: :func:`load`, behind ``jaxbp.data.load``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import jax

from jaxbp.data import synthetic
from jaxbp.data.dataset import DataError, Dataset
from jaxbp.data.files import csv_columns, from_csv, from_npz, quote_names
from jaxbp.data.synthetic import NAMES, SYNTHETIC, digits

GENERATORS: dict[str, Callable[..., Dataset]] = {
    name: getattr(synthetic, name) for name in SYNTHETIC
}
"""The generator of each synthetic set, by name: the function of that name in
``jaxbp.data.synthetic`` (the loader and the playground draw from it)."""


def load(
    spec: str,
    *,
    key=None,
    target: str | None = None,
    n: int | None = None,
    task: str | None = None,
    weight_column: str | None = None,
) -> Dataset:
    """Return the data set named ``spec``: one of :data:`NAMES`, or a .csv / .npz path.

    Args:
        spec: ``digits``, a synthetic name (:data:`SYNTHETIC`), or a file path
            ending in ``.csv`` (needs ``target``) or ``.npz``.
        key: JAX key for the synthetic sets (default ``jax.random.key(0)``).
        target: the label column of a CSV file.
        n: number of samples of a synthetic set (its default when ``None``).
        task: for a file: ``"classification"``, ``"regression"``, ``"integral"``
            (:data:`jaxbp.data.files.INTEGRAL`) or ``None`` (inferred, see ``from_csv``).
        weight_column: a CSV column of sample weights (``Dataset.w_train``, ``w_test``).

    Example:
        >>> from jaxbp import data
        >>> data.load("digits").X_train.shape
        (1437, 64)
    """
    spec = os.fspath(spec)
    if weight_column is not None and Path(spec).suffix.lower() != ".csv":
        raise DataError(f"weight_column= names a CSV column; it does not apply to {spec!r}")
    if spec in NAMES:
        if target is not None:
            raise DataError(f"target= names a CSV column; it does not apply to {spec!r}")
        if spec == "digits":
            if n is not None:
                raise DataError("n= sets the size of a synthetic set; 'digits' has 1797 samples")
            return digits()
        key = jax.random.key(0) if key is None else key
        return GENERATORS[spec](key) if n is None else GENERATORS[spec](key, n=n)
    suffix = Path(spec).suffix.lower()
    if suffix in (".csv", ".npz") and n is not None:
        raise DataError(f"n= sets the size of a synthetic set; it does not apply to {spec!r}")
    if suffix == ".csv":
        if target is None:
            raise DataError(
                f"{spec}: name the label column with target= (--target COLUMN); "
                f"columns are: {quote_names(csv_columns(spec))}"
            )
        return from_csv(spec, target, task=task, weight_column=weight_column)
    if suffix == ".npz":
        if target is not None:
            raise DataError(f"{spec}: target= is for CSV files; a .npz holds arrays X and y")
        return from_npz(spec, task=task)
    raise DataError(
        f"unknown data set {spec!r}: expected one of {', '.join(NAMES)}, "
        "or a path to a file ending in .csv or .npz"
    )
