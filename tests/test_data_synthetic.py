"""Tests of jaxbp.data.synthetic: the embedded digits and the generated data sets.

Synthetic sets use one size N, so the jax.random draws compile once for all of them.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxbp
from jaxbp import data
from jaxbp.data import DataError

N = 200
KEY = jax.random.key(0)
CLASSIFIERS = ("moons", "circles", "spirals", "xor", "blobs")


def raw(ds: data.Dataset, X: np.ndarray) -> np.ndarray:
    """Undo the standardisation: x = X · std + mean."""
    mean, std = ds.scaler
    return X.astype(np.float64) * std + mean


def assert_same(a: data.Dataset, b: data.Dataset) -> None:
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def assert_standardised(ds: data.Dataset) -> None:
    varying = ds.X_train.std(axis=0) > 0
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0)[varying], 1, atol=1e-4)


# ---------------------------------------------------------------------------
# digits


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def test_digits_shapes_and_types(digits):
    assert digits.X_train.shape == (1437, 64) and digits.X_test.shape == (360, 64)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert (digits.task, digits.n_classes, digits.d, digits.n_outputs) == (
        "classification",
        10,
        64,
        10,
    )
    assert digits.X_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert set(np.unique(digits.y_train)) == set(range(10))


def test_digits_split_is_stratified_and_fixed(digits):
    y_all = load_digits().target
    test_counts = np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * np.bincount(y_all)) <= 1)
    assert_same(digits, data.digits())


def test_embedded_digits_are_scikit_learns_with_its_split(digits):
    """The shipped copy and its stored split equal load_digits() split by train_test_split."""
    bunch = load_digits()
    expected = data.make_dataset("digits", bunch.data, bunch.target, n_classes=10, seed=0)
    assert_same(digits, expected)
    for ours, theirs in zip(digits.scaler, expected.scaler, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # a non-default test fraction is split by scikit-learn from the same arrays
    assert_same(
        data.digits(0.3),
        data.make_dataset(
            "digits", bunch.data, bunch.target, n_classes=10, seed=0, test_fraction=0.3
        ),
    )


def test_digits_load_without_importing_scikit_learn():
    code = "import sys, jaxbp.data as d; d.digits(); print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_digits_standardised_with_the_train_scaler(digits):
    assert_standardised(digits)
    # pixel 0 is always 0: a constant feature stays 0, with std 1 and no NaN
    assert digits.scaler[1][0] == 1 and np.all(digits.X_train[:, 0] == 0)
    # undoing the train scaler on the test part gives the original pixels (0..16)
    test_pixels = raw(digits, digits.X_test)
    np.testing.assert_allclose(test_pixels, np.round(test_pixels), atol=1e-3)
    recovered = np.round(np.concatenate([raw(digits, digits.X_train), test_pixels]))
    original = load_digits().data
    assert sorted(map(tuple, recovered)) == sorted(map(tuple, original))
    # the scaler is the train part's, not the whole data set's
    assert not np.allclose(digits.scaler[0], original.mean(axis=0))
    np.testing.assert_allclose(digits.transform(test_pixels), digits.X_test, atol=1e-4)


# ---------------------------------------------------------------------------
# synthetic classification


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_synthetic_shapes_labels_and_balance(name):
    ds = getattr(data, name)(KEY, n=N)
    C = ds.n_classes
    assert ds.name == name and ds.task == "classification" and C == (3 if name == "blobs" else 2)
    assert ds.X_train.shape == (160, 2) and ds.X_test.shape == (40, 2)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    y = np.concatenate([ds.y_train, ds.y_test])
    assert y.min() == 0 and y.max() == C - 1
    assert np.all(np.abs(np.bincount(y) - N / C) <= 1)  # balanced
    assert np.all(np.abs(np.bincount(ds.y_test) - 40 / C) <= 1)  # stratified
    assert np.isfinite(ds.X_train).all()
    assert_standardised(ds)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_synthetic_determinism(name):
    make = getattr(data, name)
    a, b, c = make(KEY, n=N), make(jax.random.key(0), n=N), make(jax.random.key(1), n=N)
    assert_same(a, b)
    assert not np.array_equal(a.X_train, c.X_train)


def _xor_rule(x, ds):
    return (x[:, 0] * x[:, 1] < 0).astype(int)


def _circles_rule(x, ds):
    return (np.linalg.norm(x, axis=1) < 0.75).astype(int)


def _moons_rule(x, ds):  # the nearer of the two noiseless half circles
    t = np.linspace(0, np.pi, 200)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    arcs = np.stack([upper, np.array([1.0, 0.5]) - upper])  # (2, 200, 2)
    distance = np.linalg.norm(x[:, None, None] - arcs, axis=-1).min(axis=-1)
    return np.argmin(distance, axis=1)


def _blobs_rule(x, ds):  # nearest class mean
    means = np.stack([x[ds.y_train == c].mean(axis=0) for c in range(ds.n_classes)])
    return np.argmin(((x[:, None] - means) ** 2).sum(-1), axis=1)


@pytest.mark.parametrize(
    "name, rule",
    [
        ("xor", _xor_rule),
        ("circles", _circles_rule),
        ("moons", _moons_rule),
        ("blobs", _blobs_rule),
    ],
)
def test_synthetic_geometry(name, rule):
    """The classes have the advertised shape: a simple rule on raw x mostly recovers them."""
    ds = getattr(data, name)(KEY, n=N)
    x = raw(ds, ds.X_train)
    assert np.mean(rule(x, ds) == ds.y_train) > 0.85


def test_blobs_centers_and_spirals_radius():
    ds = data.blobs(KEY, n=N, centers=4)
    assert ds.n_classes == ds.n_outputs == 4 and set(ds.y_train) == {0, 1, 2, 3}
    sp = data.spirals(KEY, n=N, noise=0.0, turns=2.0)
    assert np.linalg.norm(raw(sp, sp.X_train), axis=1).max() <= 4.0 + 1e-4  # r = θ/π ≤ 2·turns


# ---------------------------------------------------------------------------
# regression


def test_sine_target_matches_labels_up_to_noise():
    ds = data.sine(KEY, n=N, noise=0.05)
    assert ds.task == "regression" and ds.n_classes is None and ds.target is np.sin
    assert ds.X_train.shape == (160, 1) and ds.y_train.shape == (160,) and ds.n_outputs == 1
    x = raw(ds, ds.X_train)[:, 0]
    assert x.min() >= -3 - 1e-4 and x.max() <= 3 + 1e-4
    residual = ds.y_train - ds.target(x)
    assert np.abs(residual).max() < 0.25 and 0.03 < residual.std() < 0.07


def test_regression_1d_custom_function_without_noise():
    ds = data.regression_1d(KEY, np.square, n=N, low=0, high=2, noise=0.0, name="square")
    assert ds.name == "square" and ds.target is np.square
    x = raw(ds, ds.X_test)[:, 0]
    np.testing.assert_allclose(ds.y_test, x**2, atol=1e-4)


@pytest.mark.parametrize("out", [1, 2])
def test_teacher_labels_are_the_teacher_forward(out):
    ds = data.teacher(KEY, n=N, d=2, hidden=8, out=out)
    net, params = data.teacher_net(KEY, d=2, hidden=8, out=out)
    assert ds.task == "regression" and ds.X_train.shape == (160, 2)
    assert ds.y_train.shape == ((160,) if out == 1 else (160, out)) and ds.n_outputs == out
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        f = np.asarray(jaxbp.forward(net, params, X))
        np.testing.assert_allclose(f.reshape(y.shape), y, rtol=1e-5, atol=1e-6)
    assert np.std(ds.y_train) > 1e-2  # not a trivial teacher
    noisy = data.teacher(KEY, n=N, d=2, hidden=8, out=out, noise=0.1)
    np.testing.assert_array_equal(noisy.X_train, ds.X_train)  # same inputs
    assert 0.05 < np.std(noisy.y_train - ds.y_train) < 0.2


# ---------------------------------------------------------------------------
# errors


def test_error_generator_arguments():
    with pytest.raises(DataError, match="n must be an integer >= 4"):
        data.moons(KEY, n=3)
    with pytest.raises(DataError, match="centers must be"):
        data.blobs(KEY, n=N, centers=1)
    with pytest.raises(DataError, match="noise must be >= 0"):
        data.sine(KEY, n=N, noise=-1.0)
