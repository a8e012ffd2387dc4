"""Runs you can trust: labels mapped by the run's classes, resume flags, damaged run folders,
existing --out folders, divergence, predict by column name, Ctrl-C at several moments."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import run_cli, write_csv

from jaxbp import checkpoint
from jaxbp.cli import main

_run, _write_csv = run_cli, write_csv


@pytest.fixture(scope="module")
def insects(tmp_path_factory):
    """A run trained on three named classes ant/bee/cat, and files of its data."""
    tmp = tmp_path_factory.mktemp("insects")
    rng = np.random.default_rng(0)
    names = np.array(["ant", "bee", "cat"])
    centres = np.array([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    y = rng.integers(0, 3, 600)
    X = centres[y] + rng.normal(size=(600, 2))
    rows = [[*x, names[c]] for x, c in zip(X.round(4).tolist(), y, strict=True)]
    train = _write_csv(tmp / "train.csv", ["f1", "f2", "kind"], rows)
    subset = _write_csv(
        tmp / "bee_cat.csv", ["f1", "f2", "kind"], [r for r in rows if r[2] != "ant"]
    )
    unknown = _write_csv(tmp / "dog.csv", ["f1", "f2", "kind"], [*rows[:20], [0.0, 0.0, "dog"]])
    run = tmp / "run"
    argv = ["train", "--data", train, "--target", "kind", "--epochs", "10", "--hidden", "16",
            "--lr", "0.02", "--out", run, "--quiet"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return {"run": run, "subset": subset, "unknown": unknown, "tmp": tmp, "rows": rows}


def test_evaluate_maps_labels_through_the_runs_classes(insects, capsys):
    code, out, _ = _run(capsys, "evaluate", "--run", insects["run"], "--data", insects["subset"],
                        "--target", "kind")  # fmt: skip
    assert code == 0
    accuracy = float(out.split("accuracy")[1].split("%")[0])
    assert accuracy > 90  # re-numbering bee/cat as 0/1 gave 9.95%


def test_evaluate_refuses_a_label_the_run_never_saw(insects, capsys):
    code, _, err = _run(capsys, "evaluate", "--run", insects["run"], "--data", insects["unknown"],
                        "--target", "kind")  # fmt: skip
    assert code == 2
    assert "'dog'" in err and "ant" in err and "cat" in err


def test_evaluate_from_another_working_directory(insects, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run stored its data path absolute
    code, out, _ = _run(capsys, "evaluate", "--run", insects["run"])
    assert code == 0 and "accuracy" in out


def test_predict_matches_features_by_column_name(insects, capsys):
    shuffled = _write_csv(
        insects["tmp"] / "reordered.csv", ["kind", "f2", "f1", "note"],
        [[r[2], r[1], r[0], "x"] for r in insects["rows"][:50]],
    )  # fmt: skip
    out_file = insects["tmp"] / "pred.csv"
    code, _, _ = _run(capsys, "predict", "--run", insects["run"], "--input", shuffled,
                      "--output", out_file, "--probabilities")  # fmt: skip
    assert code == 0
    rows = list(csv.reader(out_file.open()))
    assert rows[0] == ["prediction", "p(ant)", "p(bee)", "p(cat)"]
    truth = [r[2] for r in insects["rows"][:50]]
    assert np.mean([r[0] == t for r, t in zip(rows[1:], truth, strict=True)]) > 0.9
    assert np.allclose([sum(map(float, r[1:])) for r in rows[1:]], 1, atol=1e-5)
    missing = _write_csv(insects["tmp"] / "missing.csv", ["f1", "kind"], [[0.0, "ant"]])
    code, _, err = _run(capsys, "predict", "--run", insects["run"], "--input", missing)
    assert code == 2 and "'f2'" in err


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("blobs") / "run"
    assert main(["train", "--data", "blobs", "--hidden", "8", "--epochs", "2", "--out", str(run),
                 "--quiet"]) == 0  # fmt: skip
    return run


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (["--hidden", "16"], "--hidden 16"),
        (["--activation", "tanh"], "--activation tanh"),
        (["--optimizer", "sgd"], "--optimizer sgd"),
        (["--data", "circles"], "--data circles"),
        (["--lr", "0.5"], "--lr 0.5"),
    ],
)
def test_resume_refuses_flags_that_contradict_the_run(blobs_run, capsys, flags, name):
    code, _, err = _run(capsys, "train", "--resume", blobs_run, *flags, "--quiet")
    assert code == 2
    assert name in err and "contradicts" in err


def test_resume_applies_epochs_and_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", "--data", "xor", "--hidden", "4", "--epochs", "1", "--out", run,
                "--quiet")[0] == 0  # fmt: skip
    code, _, err = _run(capsys, "train", "--resume", run, "--epochs", "2", "--hidden", "4",
                        "--quiet")  # fmt: skip
    assert code == 0 and "--epochs: 1 → 2" in err
    assert checkpoint.load(run / "checkpoint.npz").epoch == 2
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_existing_out_is_refused_unless_overwrite(blobs_run, tmp_path, capsys):
    before = (blobs_run / "checkpoint.npz").read_bytes()
    code, _, err = _run(capsys, "train", "--data", "blobs", "--epochs", "1", "--out", blobs_run)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert (blobs_run / "checkpoint.npz").read_bytes() == before
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    code, _, err = _run(capsys, "train", "--out", a_file, "--epochs", "1")
    assert code == 2 and "existing file" in err and a_file.read_text() == "keep me"
    other = tmp_path / "other"
    assert _run(capsys, "train", "--data", "xor", "--hidden", "4", "--epochs", "1", "--out", other,
                "--quiet")[0] == 0  # fmt: skip
    code, _, _ = _run(capsys, "train", "--data", "xor", "--hidden", "4", "--epochs", "2", "--out",
                      other, "--quiet", "--overwrite")  # fmt: skip
    assert code == 0 and checkpoint.load(other / "checkpoint.npz").epoch == 2


def _copy_run(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: c | {"activation": "tanh"}, "holds a network"),
        (lambda c: {k: v for k, v in c.items() if k != "head"}, "lacks the fields ['head']"),
        (lambda c: [1, 2], "must hold a JSON object"),
        (lambda c: c | {"hidden": "many"}, "hidden must be a positive integer"),
        (lambda c: c | {"hidden": 16}, "params.V has shape"),
        (lambda c: c | {"scaler": {"mean": [0], "std": [1]}}, "scaler must hold d=2"),
    ],
)
def test_a_config_that_disagrees_with_the_checkpoint_is_refused(blobs_run, tmp_path, capsys,
                                                                 edit, words):  # fmt: skip
    run = _copy_run(blobs_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(edit(config)))
    for argv in (["evaluate", "--run", run], ["train", "--resume", run, "--epochs", "3"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and words in err, err
        assert "config.json" in err or "checkpoint" in err


def test_damaged_config_json_is_one_line(blobs_run, tmp_path, capsys):
    run = _copy_run(blobs_run, tmp_path / "run")
    for text in ("{", "[" * 100_000, "\xff\xfe", ""):
        (run / "config.json").write_text(text, errors="surrogateescape")
        code, _, err = _run(capsys, "evaluate", "--run", run)
        assert code == 2 and "config.json" in err and len(err.strip().splitlines()) == 1


def test_divergence_keeps_parameters_with_a_finite_loss(tmp_path, capsys):
    argv = ["train", "--data", "sine", "--optimizer", "momentum", "--lr", "1", "--batch-size",
            "full", "--epochs", "30", "--out", tmp_path, "--quiet"]  # fmt: skip
    code, out, _ = _run(capsys, *argv)
    assert code == 1
    mse = float(out.split("test MSE")[1].split()[0])
    assert np.isfinite(mse)
    code, out, _ = _run(capsys, "evaluate", "--run", tmp_path)
    assert code == 0 and "nan" not in out and "inf" not in out


def test_seeds_run_says_what_it_saved(tmp_path, capsys):
    assert _run(capsys, "train", "--data", "xor", "--seeds", "2", "--epochs", "1", "--hidden",
                "4", "--out", tmp_path, "--quiet")[0] == 0  # fmt: skip
    code, _, err = _run(capsys, "evaluate", "--run", tmp_path)
    assert code == 2 and "sweep" in err and "sweep.json" in err


_SLOW_TRAIN = ["train", "--data", "digits", "--hidden", "256", "--batch-size", "8",
               "--epochs", "3000", "--quiet"]  # fmt: skip


def _interrupt(out, after_s, *, extra=(), second_after=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxbp.cli", *_SLOW_TRAIN, *extra, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    if second_after is not None:
        time.sleep(second_after)
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=240)
    return proc.returncode, stdout, stderr


def _check_resumable_or_empty(out, code, stderr):
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    ckpt_path = out / "checkpoint.npz"
    if ckpt_path.exists():
        ckpt = checkpoint.load(ckpt_path)  # consistent history (checked by load)
        assert len(ckpt.history["epoch"]) == ckpt.epoch
        assert f"epochs up to {ckpt.epoch} are saved" in stderr and "--resume" in stderr
        assert (out / "history.csv").exists() and (out / "loss.png").exists()
        return ckpt.epoch
    assert "--resume" not in stderr
    assert not out.exists() or not any(out.iterdir())
    return 0


@pytest.mark.parametrize("after_s", [0.3, 1.5, 4.0, 9.0])
def test_ctrl_c_at_any_moment_leaves_a_resumable_run_or_nothing(tmp_path, after_s):
    out = tmp_path / "run"
    code, _, stderr = _interrupt(out, after_s)
    _check_resumable_or_empty(out, code, stderr)


def test_ctrl_c_twice_and_after_a_resume(tmp_path):
    out = tmp_path / "run"
    code, _, stderr = _interrupt(out, 9.0, second_after=0.05)
    first = _check_resumable_or_empty(out, code, stderr)
    if not first:
        pytest.skip("the machine was too slow to finish an epoch before Ctrl-C")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxbp.cli", "train", "--resume", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    time.sleep(6.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=240)
    second = _check_resumable_or_empty(out, proc.returncode, stderr)
    assert second >= first


def test_a_log_gets_plain_progress_lines_not_a_bar(tmp_path, capsys):
    code, _, err = _run(capsys, "train", "--data", "xor", "--hidden", "4", "--epochs", "20",
                        "--out", tmp_path / "a")  # fmt: skip
    assert code == 0  # capsys's stderr is not a terminal: one line per 2 epochs
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == [f"{k}/20" for k in range(2, 21, 2)]
    assert "val_accuracy" in lines[-1] and "\r" not in err
    code, _, err = _run(capsys, "train", "--data", "xor", "--hidden", "4", "--epochs", "20",
                        "--out", tmp_path / "b", "--quiet")  # fmt: skip
    assert code == 0 and "epoch 2/20" not in err
