"""The data a session trains on, built by the library's own loaders.

- The built-in sets at their generators' defaults (and the 20 % test split) are
  ``jaxbp.data.load(name, key=jax.random.key(seed))``: a run folder naming them
  reloads the same split.
- Any other noise, size or split draws the set with its generator, takes the raw
  points and splits them as :func:`jaxbp.data.from_csv` splits a file
  (``make_dataset(..., seed=0)``): an export writes those points as ``data.csv``, which
  ``jaxbp evaluate`` then reloads into exactly this split.
- An uploaded CSV (at most :data:`MAX_UPLOAD_BYTES`) is read by
  :func:`jaxbp.data.from_csv` (no pickle) from an in-memory file: nothing is written
  to disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxbp import data
from jaxbp.data import DataError, Dataset
from jaxbp.data.loading import GENERATORS
from jaxbp.playground.settings import DEFAULT_TEST_FRACTION, UPLOAD, Settings, SettingsError

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


class Upload(NamedTuple):
    """A CSV file the user sent: its name, bytes and header."""

    name: str
    content: bytes
    columns: tuple[str, ...]


class Source(NamedTuple):
    """How an export reproduces the data: a name to reload, or rows / bytes to write."""

    kind: str  # "name", "rows" or "upload"
    X: np.ndarray | None = None  # raw rows (kind "rows")
    y: np.ndarray | None = None
    content: bytes | None = None  # the uploaded file (kind "upload")


@contextlib.contextmanager
def in_memory_file(content: bytes, suffix: str = ".csv"):
    """A path to a file holding ``content``: a memfd on Linux, so nothing touches the disk."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("jaxbp-upload" + suffix)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
    else:  # pragma: no cover - other systems: a private temporary folder, removed at once
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / ("upload" + suffix)
            path.write_bytes(content)
            yield str(path)


def _renamed(err: Exception, path: str, name: str) -> DataError:
    """The library's message with the in-memory path replaced by the file's name."""
    return DataError(" ".join(str(err).replace(repr(path), repr(name)).replace(path, name).split()))


def read_upload(name: str, content: bytes) -> Upload:
    """Check an uploaded CSV's size and header; DataError with a one-line reason."""
    name = Path(str(name) or "upload.csv").name[:80]
    if len(content) > MAX_UPLOAD_BYTES:
        raise DataError(
            f"{name} is {len(content) / 2**20:.1f} MiB; uploads are limited to "
            f"{MAX_UPLOAD_BYTES // 2**20} MiB"
        )
    if not content.strip():
        raise DataError(f"{name} is empty; expected a CSV file with a header row")
    with in_memory_file(content) as path:
        try:
            columns = data.csv_columns(path)
        except DataError as err:
            raise _renamed(err, path, name) from None
    if len(columns) < 2:
        raise DataError(f"{name} has one column; expected feature columns and a label column")
    return Upload(name, content, tuple(columns))


def load(settings: Settings, upload: Upload | None) -> tuple[Dataset, Source]:
    """The session's data set and how an export reproduces it."""
    key = jax.random.key(settings.seed)
    if settings.data == UPLOAD:
        if upload is None:
            raise SettingsError("choose a CSV file to upload first")
        target = settings.target or upload.columns[-1]
        if target not in upload.columns:
            raise SettingsError(f"target column {target!r} is not in {upload.name}")
        with in_memory_file(upload.content) as path:
            try:
                ds = data.from_csv(path, target, test_fraction=settings.test_fraction)
            except DataError as err:
                raise _renamed(err, path, upload.name) from None
        return ds._replace(name=Path(upload.name).stem), Source("upload", content=upload.content)
    if settings.is_default_data():
        return data.load(settings.data, key=key), Source("name")
    ds = _generate(settings, key)
    X, y = _raw_rows(ds)
    C = ds.n_classes
    split = data.make_dataset(
        ds.name, X, y, n_classes=C, seed=0, test_fraction=settings.test_fraction,
        target=ds.target,
    )  # fmt: skip
    return split, Source("rows", X=X, y=y)


def _generate(settings: Settings, key) -> Dataset:
    """The named set drawn with the given noise and size (generator defaults otherwise)."""
    name = settings.data
    if name == "digits":
        return data.digits()
    kwargs = {} if settings.n is None else {"n": settings.n}
    if settings.noise is not None:
        kwargs["std" if name == "blobs" else "noise"] = settings.noise
    if name == "blobs":
        kwargs["centers"] = settings.centers
    return GENERATORS[name](key, **kwargs)


def _raw_rows(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All samples (train, then test) in raw units, float64, with their labels."""
    X = data.unstandardise(np.concatenate([ds.X_train, ds.X_test]).astype(np.float64), ds.scaler)
    return X, np.concatenate([ds.y_train, ds.y_test])


def same_split(a: Dataset, b: Dataset) -> bool:
    """Whether two data sets hold the same split, labels and scaler (bit for bit)."""
    pairs = [(a.X_train, b.X_train), (a.X_test, b.X_test), (a.y_train, b.y_train),
             (a.y_test, b.y_test)]  # fmt: skip
    if a.scaler is not None and b.scaler is not None:
        pairs += list(zip(a.scaler, b.scaler, strict=True))
    return all(np.array_equal(np.asarray(p), np.asarray(q)) for p, q in pairs) and (
        a.n_classes == b.n_classes
    )


def default_test_split(settings: Settings) -> bool:
    return settings.test_fraction == DEFAULT_TEST_FRACTION
