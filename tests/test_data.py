"""Tests of jaxbp.data: embedded, synthetic and user data sets, and their errors.

Synthetic sets use one size N, so the jax.random draws compile once for all of them.
"""

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
# user files


def write_csv(path, header, rows):
    lines = [",".join(header), *(",".join(str(c) for c in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_string_labels_round_trip(tmp_path):
    labels = ["virginica", "setosa", "versicolor"]
    rows = [(i, i % 5 * 0.5, labels[i % 3]) for i in range(30)]
    ds = data.from_csv(write_csv(tmp_path / "iris.csv", ["a", "b", "species"], rows), "species")
    assert (ds.name, ds.task, ds.n_classes, ds.d) == ("iris", "classification", 3, 2)
    assert list(ds.classes) == sorted(labels)
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        x = raw(ds, X)
        index = np.round(x[:, 0]).astype(int)  # column a holds the row index
        np.testing.assert_allclose(x[:, 1], index % 5 * 0.5, atol=1e-5)
        assert [ds.classes[c] for c in y] == [labels[i % 3] for i in index]
    assert np.all(np.bincount(ds.y_test) == 2)  # stratified: 6 test rows, 3 classes


def test_csv_integer_labels_and_regression(tmp_path):
    rows = [(i, (i * 7) % 3 + 1) for i in range(30)]
    path = write_csv(tmp_path / "ints.csv", ["x", "label"], rows)
    ds = data.from_csv(path, "label")
    assert ds.task == "classification" and list(ds.classes) == [1, 2, 3]
    index = np.round(raw(ds, ds.X_train)[:, 0]).astype(int)
    np.testing.assert_array_equal(ds.y_train, (index * 7) % 3)
    # the same integers as a regression target when asked
    reg = data.from_csv(path, "label", task="regression")
    assert reg.task == "regression" and reg.y_train.dtype == np.float32
    # real-valued target: regression is inferred
    rows = [(i, i % 4, 0.1 * i * i) for i in range(20)]
    ds = data.from_csv(write_csv(tmp_path / "reg.csv", ["u", "v", "y"], rows), "y")
    assert ds.task == "regression" and ds.n_classes is None and ds.n_outputs == 1
    index = np.round(raw(ds, ds.X_test)[:, 0]).astype(int)
    np.testing.assert_allclose(ds.y_test, 0.1 * index**2, rtol=1e-6)


def test_npz_round_trip(tmp_path):
    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.savez(tmp_path / "s.npz", X=X, y=np.array(["no", "yes"] * 10))
    ds = data.from_npz(tmp_path / "s.npz")
    assert ds.task == "classification" and list(ds.classes) == ["no", "yes"]
    row = np.round(raw(ds, ds.X_train)[:, 0] / 2).astype(int)
    np.testing.assert_array_equal(ds.y_train, row % 2)
    # multi-output regression
    Y = np.stack([X[:, 0] * 0.5, -X[:, 1]], axis=1)
    np.savez(tmp_path / "m.npz", X=X, y=Y)
    ds = data.from_npz(tmp_path / "m.npz")
    assert ds.task == "regression" and ds.y_train.shape == (16, 2) and ds.n_outputs == 2
    x = raw(ds, ds.X_train)
    np.testing.assert_allclose(ds.y_train, np.stack([x[:, 0] * 0.5, -x[:, 1]], 1), atol=1e-4)
    # integer labels, and an explicit task
    np.savez(tmp_path / "i.npz", X=X, y=np.arange(20) % 4)
    assert data.from_npz(tmp_path / "i.npz").n_classes == 4
    assert data.from_npz(tmp_path / "i.npz", task="regression").task == "regression"


def test_load_dispatches_names_and_files(tmp_path):
    assert_same(data.load("moons", n=N), data.moons(jax.random.key(0), n=N))
    assert_same(data.load("xor", key=jax.random.key(1), n=N), data.xor(jax.random.key(1), n=N))
    assert data.load("digits").n_classes == 10
    assert set(data.NAMES) == {"digits", *data.SYNTHETIC}
    path = write_csv(tmp_path / "d.csv", ["a", "t"], [(i, i % 2) for i in range(10)])
    assert_same(data.load(str(path), target="t"), data.from_csv(path, "t"))
    np.savez(tmp_path / "d.npz", X=np.arange(10.0), y=np.arange(10) % 2)
    assert data.load(str(tmp_path / "d.npz")).d == 1


# ---------------------------------------------------------------------------
# errors


def test_error_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file '.*nope\.csv' not found"):
        data.from_csv(tmp_path / "nope.csv", "y")
    with pytest.raises(DataError, match=r"data file '.*nope\.npz' not found"):
        data.load(str(tmp_path / "nope.npz"))


def test_error_unknown_name():
    with pytest.raises(DataError, match=r"unknown data set 'mnist'.*digits, moons.*\.csv or \.npz"):
        data.load("mnist")
    assert issubclass(DataError, ValueError)


@pytest.fixture
def small_csv(tmp_path):
    return write_csv(
        tmp_path / "small.csv", ["a", "b", "label"], [(i, 2 * i, i % 2) for i in range(8)]
    )


def test_error_csv_target(small_csv):
    with pytest.raises(DataError, match=r"target=.*columns are: 'a', 'b', 'label'"):
        data.load(str(small_csv))
    with pytest.raises(DataError, match=r"no column named 'y'; columns are: 'a', 'b', 'label'"):
        data.from_csv(small_csv, "y")


@pytest.mark.parametrize(
    "cell, match",
    [
        ("abc", r"line 4: feature column 'b' must be numeric, found 'abc'"),
        ("", r"line 4: column 'b' has an empty cell"),
        ("nan", r"line 4: column 'b' has the value 'nan'"),
    ],
)
def test_error_csv_bad_cells(tmp_path, cell, match):
    rows = [(i, i if i != 2 else cell, i % 2) for i in range(8)]
    with pytest.raises(DataError, match=match):
        data.from_csv(write_csv(tmp_path / "bad.csv", ["a", "b", "label"], rows), "label")


def test_error_csv_structure(tmp_path):
    with pytest.raises(DataError, match="header row naming the columns is required"):
        data.from_csv(write_csv(tmp_path / "h.csv", ["1", "2"], [(3, 4)] * 8), "1")
    (tmp_path / "r.csv").write_text("a,b\n1,0\n2,1,9\n")
    with pytest.raises(DataError, match=r"line 3: 3 fields, but the header has 2"):
        data.from_csv(tmp_path / "r.csv", "b")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        data.from_csv(tmp_path / "e.csv", "b")
    with pytest.raises(DataError, match="missing or non-finite"):
        data.from_csv(write_csv(tmp_path / "m.csv", ["a", "y"], [(1, "")] + [(1, 0)] * 7), "y")


def test_error_labels(tmp_path):
    one = write_csv(tmp_path / "one.csv", ["a", "y"], [(i, 3) for i in range(8)])
    with pytest.raises(DataError, match=r"only one class \(3\)"):
        data.from_csv(one, "y")
    words = write_csv(tmp_path / "w.csv", ["a", "y"], [(i, "cat") for i in range(8)])
    with pytest.raises(DataError, match=r"only one class \('cat'\)"):
        data.from_csv(words, "y")
    with pytest.raises(DataError, match="regression needs numeric labels"):
        data.from_csv(words, "y", task="regression")
    reals = write_csv(tmp_path / "r.csv", ["a", "y"], [(i, i / 3) for i in range(8)])
    with pytest.raises(DataError, match="classification needs integer or string labels"):
        data.from_csv(reals, "y", task="classification")
    with pytest.raises(DataError, match="task must be"):
        data.from_csv(reals, "y", task="ranking")


def test_error_too_few_samples(tmp_path):
    with pytest.raises(DataError, match="at least 4 data rows, got 3"):
        data.from_csv(write_csv(tmp_path / "t.csv", ["a", "y"], [(0, 0), (1, 1), (2, 0)]), "y")
    np.savez(tmp_path / "t.npz", X=np.zeros((3, 2)), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="at least 4 samples, got 3"):
        data.from_npz(tmp_path / "t.npz")
    with pytest.raises(DataError, match="n must be an integer >= 4"):
        data.moons(KEY, n=3)


def test_error_npz(tmp_path):
    np.savez(tmp_path / "noy.npz", X=np.zeros((8, 2)), labels=np.zeros(8))
    with pytest.raises(DataError, match=r"no array named 'y' \(the file holds: X, labels\)"):
        data.from_npz(tmp_path / "noy.npz")
    np.savez(tmp_path / "len.npz", X=np.zeros((10, 2)), y=np.arange(9) % 2)
    with pytest.raises(DataError, match=r"X has 10 samples \(rows\) but y has 9"):
        data.from_npz(tmp_path / "len.npz")
    np.savez(tmp_path / "obj.npz", X=np.zeros((8, 2)), y=np.array([0, "a"] * 4, dtype=object))
    with pytest.raises(DataError, match="object arrays"):
        data.from_npz(tmp_path / "obj.npz")
    X = np.ones((8, 2))
    X[5, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(8) % 2)
    with pytest.raises(DataError, match=r"X\[5, 1\] is NaN or inf"):
        data.from_npz(tmp_path / "nan.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz file"):
        data.from_npz(tmp_path / "junk.npz")


def test_error_load_arguments(small_csv):
    with pytest.raises(DataError, match="'digits' has 1797 samples"):
        data.load("digits", n=100)
    with pytest.raises(DataError, match="does not apply to 'moons'"):
        data.load("moons", target="y")
    with pytest.raises(DataError, match="centers must be"):
        data.blobs(KEY, n=N, centers=1)
    with pytest.raises(DataError, match="noise must be >= 0"):
        data.sine(KEY, n=N, noise=-1.0)


def test_read_features_csv_drops_the_target(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,label,b\n1,x,2\n3,y,4\n")
    X = data.read_features(path, drop="label")
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    with pytest.raises(data.DataError, match="feature column 'label' must be numeric"):
        data.read_features(path)


def test_read_features_npz_needs_only_X(tmp_path):
    np.savez(tmp_path / "x.npz", X=np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(data.read_features(tmp_path / "x.npz"), [[0, 1], [2, 3], [4, 5]])
    np.savez(tmp_path / "noX.npz", y=np.arange(3))
    with pytest.raises(data.DataError, match="no array named 'X'"):
        data.read_features(tmp_path / "noX.npz")
    np.save(tmp_path / "single.npy", np.arange(3))
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    with pytest.raises(data.DataError, match=r"not a readable \.npz"):
        data.read_features(tmp_path / "single.npz")
    with pytest.raises(data.DataError, match=r"expected a \.csv or \.npz file"):
        data.read_features(tmp_path / "x.txt")
