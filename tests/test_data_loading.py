"""Tests of jaxbp.data.load (by name or path) and of the package jaxbp.data as a whole."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxbp import data
from jaxbp.data import DataError

N = 200


def assert_same(a: data.Dataset, b: data.Dataset) -> None:
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def write_csv(path, header, rows):
    lines = [",".join(header), *(",".join(str(c) for c in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_dispatches_names_and_files(tmp_path):
    assert_same(data.load("moons", n=N), data.moons(jax.random.key(0), n=N))
    assert_same(data.load("xor", key=jax.random.key(1), n=N), data.xor(jax.random.key(1), n=N))
    assert data.load("digits").n_classes == 10
    assert set(data.NAMES) == {"digits", *data.SYNTHETIC}
    path = write_csv(tmp_path / "d.csv", ["a", "t"], [(i, i % 2) for i in range(10)])
    assert_same(data.load(str(path), target="t"), data.from_csv(path, "t"))
    np.savez(tmp_path / "d.npz", X=np.arange(10.0), y=np.arange(10) % 2)
    assert data.load(str(tmp_path / "d.npz")).d == 1


def test_error_unknown_name():
    with pytest.raises(DataError, match=r"unknown data set 'mnist'.*digits, moons.*\.csv or \.npz"):
        data.load("mnist")
    assert issubclass(DataError, ValueError)


def test_error_load_arguments():
    with pytest.raises(DataError, match="'digits' has 1797 samples"):
        data.load("digits", n=100)
    with pytest.raises(DataError, match="does not apply to 'moons'"):
        data.load("moons", target="y")


def test_import_does_not_import_sklearn():
    """scikit-learn is imported lazily (digits, the split): ``import jaxbp.data`` stays fast."""
    root = Path(data.__file__).resolve().parents[2]  # the tree whose jaxbp is under test
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    code = "import jaxbp.data, sys; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
