"""Tests of jaxbp.data.dataset: Dataset, make_dataset, fit_scaler, the split and shared checks."""

import jax
import numpy as np
import pytest

from jaxbp import data
from jaxbp.data import DataError
from jaxbp.data.dataset import as_key, check_n, check_nonnegative, split_seed


def assert_standardised(ds: data.Dataset) -> None:
    varying = ds.X_train.std(axis=0) > 0
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0)[varying], 1, atol=1e-4)


def raw_data(n: int = 20):
    """X (n, 3): a row index, a constant and a varying column; y: 2 balanced classes."""
    i = np.arange(n, dtype=np.float64)
    return np.stack([i, np.full(n, 7.0), (i * 3) % 5], axis=1), np.arange(n) % 2


def test_fit_scaler_columns_and_constant_column():
    X, _ = raw_data()
    mean, std = data.fit_scaler(X)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (3,)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-6)
    assert mean[1] == 7 and std[1] == 1  # constant: its value, and std 1
    np.testing.assert_allclose(std[[0, 2]], X.std(axis=0)[[0, 2]], rtol=1e-6)


def test_make_dataset_classification_split_and_scaler():
    X, y = raw_data()
    ds = data.make_dataset("toy", X, y, n_classes=2, seed=3)
    assert (ds.name, ds.task, ds.n_classes, ds.d, ds.n_outputs) == (
        "toy",
        "classification",
        2,
        3,
        2,
    )
    assert ds.X_train.shape == (16, 3) and ds.X_test.shape == (4, 3)  # test part: ceil(0.2 n)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.all(np.bincount(ds.y_test) == 2)  # stratified
    assert list(ds.classes) == [0, 1]
    assert_standardised(ds)
    assert np.all(ds.X_train[:, 1] == 0) and np.all(ds.X_test[:, 1] == 0)
    # the scaler is the train part's; transform applies it to raw inputs
    train_rows = np.round(ds.X_train[:, 0] * ds.scaler[1][0] + ds.scaler[0][0]).astype(int)
    np.testing.assert_allclose(ds.scaler[0], X[train_rows].mean(axis=0), rtol=1e-5)
    test_rows = sorted(set(range(20)) - set(train_rows))
    np.testing.assert_allclose(
        np.sort(ds.transform(X[test_rows]), axis=0), np.sort(ds.X_test, axis=0), atol=1e-5
    )
    # the split is fixed by the seed
    same = data.make_dataset("toy", X, y, n_classes=2, seed=3)
    np.testing.assert_array_equal(same.X_train, ds.X_train)
    assert (
        repr(ds)
        == "Dataset(name='toy', task='classification', n_train=16, n_test=4, d=3, n_outputs=2)"
    )


def test_make_dataset_regression_and_unscaled_transform():
    X, _ = raw_data()
    Y = np.stack([X[:, 0], -X[:, 2]], axis=1)
    ds = data.make_dataset("reg", X, Y, n_classes=None, test_fraction=0.25)
    assert ds.task == "regression" and ds.n_classes is None and ds.classes is None
    assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (15, 2) and ds.n_outputs == 2
    bare = ds._replace(scaler=None)
    assert bare.transform([[1, 2, 3]]).dtype == np.float32
    np.testing.assert_array_equal(bare.transform([[1, 2, 3]]), [[1, 2, 3]])


def test_make_dataset_errors():
    X, y = raw_data()
    with pytest.raises(DataError, match="toy: needs at least 4 samples, got 3"):
        data.make_dataset("toy", X[:3], y[:3], n_classes=2)
    for fraction in (0, 1, 1.5):
        with pytest.raises(DataError, match=r"test_fraction must be in \(0, 1\)"):
            data.make_dataset("toy", X, y, n_classes=2, test_fraction=fraction)
    with pytest.raises(DataError, match="leaves no training samples out of n=4"):
        data.make_dataset("toy", X[:4], y[:4], n_classes=2, test_fraction=0.99)


def test_shared_checks():
    check_n(4)
    for n in (3, 4.0, True, "8"):
        with pytest.raises(DataError, match="n must be an integer >= 4"):
            check_n(n)
    check_nonnegative(noise=0.0, std=1.0)
    with pytest.raises(DataError, match="std must be >= 0, got nan"):
        check_nonnegative(noise=0.0, std=float("nan"))
    key = as_key(5)
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(5)))
    assert as_key(key) is key
    seed = split_seed(key)
    assert isinstance(seed, int) and 0 <= seed < 2**31 - 1 and seed == split_seed(key)
