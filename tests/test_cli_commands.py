"""The jaxbp command end to end, in temporary folders."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from jaxbp import checkpoint
from jaxbp.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_png(path):
    assert path.read_bytes().startswith(PNG), path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "moons"
    code = main(
        [
            "train",
            "--data",
            "moons",
            "--epochs",
            "3",
            "--hidden",
            "16",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_train_writes_the_run_folder(moons_run):
    for name in ("config.json", "history.csv", "history.json", "checkpoint.npz"):
        assert (moons_run / name).is_file(), name
    for name in ("loss.png", "accuracy.png", "decision_regions.png", "confusion_matrix.png"):
        _assert_png(moons_run / name)
    history = json.loads((moons_run / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]
    with (moons_run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["loss"]) for r in rows] == history["loss"]
    ckpt = checkpoint.load(moons_run / "checkpoint.npz")
    assert ckpt.epoch == 3 and ckpt.net.head == "softmax" and ckpt.params.V.shape == (16, 2)


def test_train_prints_a_summary(tmp_path, capsys):
    code, out, _ = _run(
        capsys, "train", "--data", "sine", "--epochs", "2", "--activation", "tanh",
        "--out", str(tmp_path), "--quiet", "--batch-size", "full",
    )  # fmt: skip
    assert code == 0
    assert "test MSE" in out and str(tmp_path) in out and "fit.png" in out
    _assert_png(tmp_path / "fit.png")


def test_default_train_reaches_95_percent_on_digits(tmp_path, capsys):
    code, out, _ = _run(capsys, "train", "--out", str(tmp_path), "--quiet")
    assert code == 0
    accuracy = float(out.split("test accuracy")[1].split("%")[0])
    assert accuracy >= 95.0
    code, out, _ = _run(capsys, "evaluate", "--run", str(tmp_path))
    assert code == 0 and f"{accuracy:.2f}%" in out


def test_resume_equals_one_run_bit_for_bit(tmp_path, capsys):
    common = ["--data", "blobs", "--hidden", "8", "--quiet", "--seed", "3"]
    assert main(["train", *common, "--epochs", "6", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *common, "--epochs", "3", "--out", str(tmp_path / "half")]) == 0
    assert main(["train", "--resume", str(tmp_path / "half"), "--epochs", "6", "--quiet"]) == 0
    capsys.readouterr()
    whole = checkpoint.load(tmp_path / "whole" / "checkpoint.npz")
    resumed = checkpoint.load(tmp_path / "half" / "checkpoint.npz")
    assert whole.epoch == resumed.epoch == 6
    for field in ("V", "W", "b", "c"):
        assert np.array_equal(getattr(whole.params, field), getattr(resumed.params, field))
    for key in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy"):
        assert whole.history[key] == resumed.history[key], key


def test_divergence_exits_1_and_says_so(tmp_path, capsys):
    code, _, err = _run(
        capsys, "train", "--data", "sine", "--optimizer", "sgd", "--lr", "1e6",
        "--epochs", "20", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 1
    assert "diverged at epoch" in err and "smaller learning rate" in err
    assert (tmp_path / "checkpoint.npz").is_file()


def test_predict_writes_csv(moons_run, tmp_path, capsys):
    X = np.array([[0.0, 0.5], [1.0, -0.5], [-1.0, 0.8]])
    np.savez(tmp_path / "in.npz", X=X)
    out = tmp_path / "pred.csv"
    code, _, _ = _run(
        capsys,
        "predict",
        "--run",
        str(moons_run),
        "--input",
        str(tmp_path / "in.npz"),
        "--output",
        str(out),
    )
    assert code == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["prediction"] and len(rows) == 4
    assert {r[0] for r in rows[1:]} <= {"0", "1"}


def test_gradcheck_and_explain(capsys):
    code, out, _ = _run(capsys, "gradcheck", "--activations", "relu", "tanh", "--heads", "softmax")
    assert code == 0
    assert "4/4 within tolerance" in out
    code, out, _ = _run(capsys, "explain", "--activation", "sigmoid", "--head", "squared")
    assert code == 0
    for equation in ("z = σ(Vx)", "∂ℓ/∂W = δ zᵀ", "∂ℓ/∂z = Wᵀ δ", "∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx)) xᵀ"):
        assert equation in out


@pytest.mark.parametrize(
    "argv, old",
    [
        (["explain", "--head", "softmax"], "--out"),
        (["gradcheck", "--activations", "tanh", "--heads", "softmax"], "--classes"),
    ],
)
def test_the_old_output_width_flags_still_work_with_a_notice(capsys, argv, old):
    code, out, err = _run(capsys, *argv, "--outputs", "4")
    assert code == 0 and "deprecated" not in err
    code, old_out, err = _run(capsys, *argv, old, "4")
    untimed = re.compile(r"\([0-9.]+ s\)")  # gradcheck's last line says how long it took
    assert code == 0 and untimed.sub("", old_out) == untimed.sub("", out)
    assert f"{old} is deprecated" in err and "use --outputs" in err and len(err.splitlines()) == 1


def test_gradcheck_fails_loudly_on_a_tight_tolerance(capsys):
    code, out, _ = _run(
        capsys, "gradcheck", "--activations", "tanh", "--heads", "squared", "--tol-fd", "1e-15"
    )
    assert code == 1 and "FAIL" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--activation", "swish"], "invalid choice: 'swish'"),
        (["train", "--hidden", "0"], "expected a positive integer"),
        (["train", "--lr", "-1"], "expected a finite number >= 0"),
        (["train", "--batch-size", "abc"], "--batch-size must be a positive integer or 'full'"),
        (["train", "--data", "nope"], "unknown data set 'nope'"),
        (["train", "--data", "missing.csv", "--target", "y"], "missing.csv"),
        (["train", "--head", "logistic"], "--head logistic needs 2 classes"),
        (["train", "--data", "sine", "--head", "softmax"], "--head softmax is for classes"),
        (["train", "--resume", "no/such/run"], "run folder no/such/run does not exist"),
        (["evaluate", "--run", "no/such/run"], "does not exist"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(argv, message, capsys):
    code = None
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_console_script_runs_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxbp.cli", "train", "--data", "nope.csv", "--target", "y"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_seed_sweep_trains_each_seed(tmp_path, capsys):
    code, out, _ = _run(
        capsys, "train", "--data", "moons", "--seeds", "3", "--seed", "5", "--epochs", "2",
        "--hidden", "8", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert code == 0
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert [m["seed"] for m in sweep["models"]] == [5, 6, 7]
    assert len({m["loss"] for m in sweep["models"]}) == 3  # different seeds, different nets
    assert "mean ± std of test accuracy" in out


def test_more_devices_than_available_exit_2(tmp_path, capsys):
    code, _, err = _run(
        capsys, "train", "--devices", "64", "--epochs", "1", "--out", str(tmp_path), "--quiet"
    )
    assert code == 2 and "devices=64" in err


@pytest.mark.parametrize(
    "argv",
    [["train", "--seeds", "100000000"], ["playground", "--port", "99999"]],
)
def test_out_of_range_integers_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's usage error
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected an integer from" in err[0], err


def test_out_of_memory_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "huge"
    argv = ["train", "--data", "moons", "--hidden", "100000000000", "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "out of memory" in err[-1] and "--hidden" in err[-1], err
    assert not any("Traceback" in line for line in err) and not out.exists()


def test_a_csv_run_is_not_evaluated_on_a_built_in_set(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    rows = [f"{a},{b},{3 * a - b}" for a, b in X]
    data_file = tmp_path / "fr.csv"
    data_file.write_text("\n".join(["a,b,price", *rows]) + "\n")
    out = tmp_path / "fr"
    flags = ["--data", str(data_file), "--target", "price", "--epochs", "2", "--quiet"]
    assert main(["train", *flags, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--data", "moons"]) == 2  # same d, no names
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'a', 'b'" in err[0], err
