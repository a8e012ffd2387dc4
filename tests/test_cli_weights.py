"""``jaxbp train --class-weight balanced`` and ``--weight-column COLUMN``.

Both are stored in the run's config.json, so that ``--resume``, ``evaluate`` and the
training summary apply them; the weight column is split with its rows and is not a feature.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxbp import data
from jaxbp.cli import main
from jaxbp.cli.config import ConfigError, RunConfig


@pytest.fixture(scope="module")
def weighted_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 60
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=n) > 0.6, "yes", "no")
    w = 1.0 + np.arange(n) % 3  # a weight column that is not a feature
    path = tmp_path_factory.mktemp("cw") / "my.csv"
    lines = ["a,b,w,y"] + [f"{X[i, 0]},{X[i, 1]},{w[i]},{y[i]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path, X, w


def test_weight_column_is_split_with_its_rows(weighted_csv):
    path, X, w = weighted_csv
    ds = data.load(str(path), target="y", weight_column="w")
    assert ds.d == 2  # a and b; w is not a feature
    mean, std = ds.scaler
    raw_a = ds.X_train[:, 0] * std[0] + mean[0]
    rows = [int(np.argmin(np.abs(X[:, 0] - a))) for a in raw_a]
    np.testing.assert_allclose(ds.w_train, w[rows])
    assert len(ds.w_test) == len(ds.X_test)
    with pytest.raises(data.DataError, match="nope"):
        data.load(str(path), target="y", weight_column="nope")


def test_balanced_weights():
    cfg = RunConfig(class_weight="balanced", task="classification")
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(cfg.sample_weights(y), [4 / 6, 4 / 6, 4 / 6, 2.0])
    np.testing.assert_allclose(cfg.sample_weights(y, [1, 2, 0, 1]), [4 / 6, 8 / 6, 0, 2.0])
    assert RunConfig().sample_weights(y) is None
    with pytest.raises(ConfigError, match="classification"):
        RunConfig(class_weight="balanced", task="regression")
    with pytest.raises(ConfigError, match="--weight-column"):
        RunConfig(data="moons", weight_column="w")


def test_train_resume_evaluate_apply_the_weights(weighted_csv, tmp_path, capsys):
    path, _, _ = weighted_csv
    out = tmp_path / "run"
    flags = ["--data", str(path), "--target", "y", "--weight-column", "w"]
    code = main(["train", *flags, "--class-weight", "balanced", "--epochs", "2",
                 "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["class_weight"] == "balanced" and config["weight_column"] == "w"
    assert config["features"] == ["a", "b"]
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "weighted: --weight-column w, --class-weight balanced" in shown
    plain = tmp_path / "plain"
    assert main(["train", *flags[:4], "--epochs", "2", "--quiet", "--out", str(plain)]) == 0
    assert json.loads((plain / "config.json").read_text())["class_weight"] is None
    balanced = tmp_path / "balanced"  # the same run but for the class weights
    assert main(["train", *flags[:4], "--class-weight", "balanced", "--epochs", "2", "--quiet",
                 "--out", str(balanced)]) == 0  # fmt: skip
    losses = [json.loads((run / "history.json").read_text())["loss"] for run in (plain, balanced)]
    assert len(losses[0]) == 2 and not np.allclose(losses[0], losses[1])


def test_evaluate_data_reads_the_runs_weight_column_by_name(weighted_csv, tmp_path, capsys):
    path, X, w = weighted_csv
    out = tmp_path / "run"
    flags = ["--data", str(path), "--target", "y", "--weight-column", "w", "--epochs", "2"]
    assert main(["train", *flags, "--quiet", "--out", str(out)]) == 0
    y = [line.split(",")[-1] for line in path.read_text().splitlines()[1:]]

    def evaluate_with(name, weights, columns=("w", "b", "y", "a")):  # another column order
        file = tmp_path / f"{name}.csv"
        cells = {"a": X[:, 0], "b": X[:, 1], "y": y}
        if weights is not None:
            cells["w"] = weights
        header = [c for c in columns if c in cells]
        rows = [",".join(str(cells[c][i]) for c in header) for i in range(len(y))]
        file.write_text("\n".join([",".join(header), *rows]) + "\n")
        capsys.readouterr()
        code = main(["evaluate", "--run", str(out), "--data", str(file)])
        return code, capsys.readouterr()

    ones = evaluate_with("ones", np.ones(len(y)))[1].out
    twos = evaluate_with("twos", np.full(len(y), 2.0))[1].out
    varied = evaluate_with("varied", w)[1].out
    assert "weighted: --weight-column w" in ones
    loss = {
        k: v.split("loss")[1].split()[0] for k, v in {"1": ones, "2": twos, "w": varied}.items()
    }
    assert loss["1"] == loss["2"] != loss["w"]  # Σ sᵢℓᵢ / Σ sᵢ: a constant weight changes nothing
    code, shown = evaluate_with("missing", None)
    assert code == 2 and "'w'" in shown.err and len(shown.err.strip().splitlines()) == 1
