"""Tests of jaxbp.data.files: CSV and NPZ data sets, feature files, and their errors."""

import numpy as np
import pytest

from jaxbp import data
from jaxbp.data import DataError


def raw(ds: data.Dataset, X: np.ndarray) -> np.ndarray:
    """Undo the standardisation: x = X · std + mean."""
    mean, std = ds.scaler
    return X.astype(np.float64) * std + mean


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


# ---------------------------------------------------------------------------
# errors


def test_error_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data file '.*nope\.csv' not found"):
        data.from_csv(tmp_path / "nope.csv", "y")
    with pytest.raises(DataError, match=r"data file '.*nope\.npz' not found"):
        data.load(str(tmp_path / "nope.npz"))


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
