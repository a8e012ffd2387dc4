"""The run folder through the command: schema (features by name, the run's task and
classes), identity (run id, config fields, data fingerprint), what may be written
(predict --output, --overwrite, a failed first save), the writer lock, signals, and the
newcomer's friction (one-line usage errors, the resume header)."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli, write_csv

from jaxbp import checkpoint
from jaxbp.cli import main
from jaxbp.runs import writer_lock

_run, _write_csv = run_cli, write_csv


def _metric(out: str, name: str) -> float:
    line = next(line for line in out.splitlines() if line.strip().startswith(name))
    value = line.split()[-1]
    return float(value.rstrip("%")) / (100 if value.endswith("%") else 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A classifier on a CSV (columns a, b, label) and a regression on a CSV (x1, x2, y)."""
    tmp = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    label = (X[:, 0] > 0).astype(int)
    cls = _write_csv(
        tmp / "cls.csv",
        ["a", "b", "label"],
        [[*x, c] for x, c in zip(X.round(4).tolist(), label, strict=True)],
    )
    y = np.round(40 * X[:, 0] + 10 * X[:, 1] + 5)
    reg = _write_csv(
        tmp / "reg.csv",
        ["x1", "x2", "y"],
        [[*x, t] for x, t in zip(X.round(4).tolist(), y, strict=True)],
    )
    common = ["--epochs", "3", "--hidden", "8", "--lr", "0.05", "--quiet"]
    assert (
        main(["train", "--data", str(cls), "--target", "label", "--out", str(tmp / "c"), *common])
        == 0
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(reg),
                "--target",
                "y",
                "--head",
                "squared",
                "--out",
                str(tmp / "r"),
                *common,
            ]
        )
        == 0
    )
    return {
        "tmp": tmp,
        "cls": cls,
        "reg": reg,
        "c": tmp / "c",
        "r": tmp / "r",
        "X": X,
        "label": label,
        "y": y,
    }


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------- the schema


def test_run_stores_its_schema_and_identity(runs):
    config = json.loads((runs["c"] / "config.json").read_text())
    assert config["features"] == ["a", "b"] and config["target"] == "label"
    assert config["task"] == "classification" and config["classes"] == [0, 1]
    assert len(config["run_id"]) == 16 and config["fingerprint"].startswith("sha256:")
    ckpt = checkpoint.load(runs["c"] / "checkpoint.npz")
    assert ckpt.config["run_id"] == config["run_id"]
    assert ckpt.config["fingerprint"] == config["fingerprint"]


def test_evaluate_data_matches_csv_columns_by_name_without_target(runs, capsys):
    rows = list(csv.reader(runs["cls"].open()))
    swapped = _write_csv(
        runs["tmp"] / "swapped.csv", ["label", "b", "a"], [[r[2], r[1], r[0]] for r in rows[1:]]
    )
    code, same, err = _run(capsys, "evaluate", "--run", runs["c"], "--data", runs["cls"])
    assert code == 0, err
    code, moved, err = _run(capsys, "evaluate", "--run", runs["c"], "--data", swapped)
    assert code == 0, err  # no --target asked: the run stores it
    assert _metric(moved, "accuracy") == _metric(same, "accuracy")
    assert _metric(moved, "loss") == _metric(same, "loss")
    missing = _write_csv(
        runs["tmp"] / "missing.csv", ["a", "label"], [[r[0], r[2]] for r in rows[1:]]
    )
    code, _, err = _run(capsys, "evaluate", "--run", runs["c"], "--data", missing)
    assert code == 2 and "'b'" in err


def test_a_regression_run_never_turns_integer_targets_into_classes(runs, capsys):
    code, out, err = _run(capsys, "evaluate", "--run", runs["r"], "--data", runs["reg"])
    assert code == 0, err
    code, pred, _ = _run(capsys, "predict", "--run", runs["r"], "--input", runs["reg"])
    predictions = np.array([float(v) for v in pred.split()[1:]])
    mse = float(np.mean((predictions - runs["y"]) ** 2))
    assert _metric(out, "mse") == pytest.approx(mse, rel=1e-3)
    assert mse > 50  # the targets span about ±100: class ids 0..C-1 would give another number


def test_a_classifier_takes_a_subset_of_its_classes(runs, capsys):
    rows = list(csv.reader(runs["cls"].open()))[1:]
    ones = _write_csv(
        runs["tmp"] / "ones.csv", ["a", "b", "label"], [r for r in rows if r[2] == "1"]
    )
    code, out, err = _run(capsys, "evaluate", "--run", runs["c"], "--data", ones)
    assert code == 0, err and "accuracy" in out
    strange = _write_csv(runs["tmp"] / "seven.csv", ["a", "b", "label"], [[0, 0, 7], [1, 1, 1]])
    code, _, err = _run(capsys, "evaluate", "--run", runs["c"], "--data", strange)
    assert code == 2 and "7" in err and "classes are [0, 1]" in err


def test_predict_refuses_non_finite_and_float32_overflow_naming_row_and_column(runs, capsys):
    bad = _write_csv(runs["tmp"] / "huge.csv", ["a", "b"], [[0, 0], [1e300, 1]])
    code, _, err = _run(capsys, "predict", "--run", runs["c"], "--input", bad)
    assert code == 2 and "row 2" in err and "'a'" in err and "overflows float32" in err


# --------------------------------------------------------------------------- identity


def test_a_checkpoint_from_another_run_is_refused_naming_both_ids(runs, capsys, tmp_path):
    mine = _copy(runs["c"], tmp_path / "mine")
    theirs = tmp_path / "theirs"
    assert (
        main(
            [
                "train",
                "--data",
                str(runs["cls"]),
                "--target",
                "label",
                "--epochs",
                "3",
                "--hidden",
                "8",
                "--lr",
                "0.05",
                "--quiet",
                "--out",
                str(theirs),
            ]
        )
        == 0
    )
    capsys.readouterr()
    shutil.copy(theirs / "checkpoint.npz", mine / "checkpoint.npz")
    ids = [json.loads((p / "config.json").read_text())["run_id"] for p in (mine, theirs)]
    for argv in (["evaluate", "--run", mine], ["train", "--resume", mine, "--epochs", "5"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and ids[0] in err and ids[1] in err


def test_a_changed_config_field_is_named(runs, capsys, tmp_path):
    run = _copy(runs["c"], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"seed": 7, "lr": 0.5}))
    code, _, err = _run(capsys, "evaluate", "--run", run)
    assert code == 2 and "seed" in err and "lr" in err


def test_evaluate_run_refuses_a_training_file_that_changed(runs, capsys, tmp_path):
    data = tmp_path / "cls.csv"
    shutil.copy(runs["cls"], data)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--target",
                "label",
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--quiet",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    with data.open("a") as fh:
        fh.write("0.5,0.5,1\n")
    capsys.readouterr()
    code, _, err = _run(capsys, "evaluate", "--run", run)
    assert code == 2 and "changed" in err and "--data FILE" in err
    code, _, err = _run(capsys, "train", "--resume", run, "--epochs", "2")
    assert code == 2 and "changed" in err
    code, _, err = _run(capsys, "evaluate", "--run", run, "--data", data)
    assert code == 0, err


@pytest.mark.parametrize("flag", [["--out", "elsewhere"], ["--overwrite"]])
def test_flags_without_meaning_on_resume_are_errors(runs, capsys, flag):
    code, _, err = _run(capsys, "train", "--resume", runs["c"], *flag)
    assert code == 2 and flag[0] in err and "--resume" in err


def test_resume_says_where_it_resumes_and_what_to_do_when_done(runs, capsys, tmp_path):
    run = _copy(runs["c"], tmp_path / "run")
    code, out, err = _run(capsys, "train", "--resume", run, "--epochs", "2")
    assert code == 0 and "already run 3 of 2 epochs" in out and "--epochs 6" in out
    code, out, err = _run(capsys, "train", "--resume", run, "--epochs", "4", "--quiet")
    assert code == 0 and f"resuming {run} at epoch 3 of 4" in err
    assert "in all" in out  # the command's wall time beside the training time
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"][-1] == checkpoint.load(run / "checkpoint.npz").epoch == 4


# --------------------------------------------------------------------------- what is written


def test_predict_output_never_replaces_a_runs_files_links_or_the_input(runs, capsys, tmp_path):
    before = (runs["c"] / "checkpoint.npz").read_bytes()
    for target in (runs["c"] / "checkpoint.npz", runs["c"] / "config.json", runs["cls"]):
        code, _, err = _run(
            capsys,
            "predict",
            "--run",
            runs["c"],
            "--input",
            runs["cls"],
            "--output",
            target,
            "--overwrite",
        )
        assert code == 2 and str(target) in err
    assert (runs["c"] / "checkpoint.npz").read_bytes() == before
    real = tmp_path / "real.csv"
    real.write_text("keep")
    (tmp_path / "link.csv").symlink_to(real)
    code, _, err = _run(
        capsys,
        "predict",
        "--run",
        runs["c"],
        "--input",
        runs["cls"],
        "--output",
        tmp_path / "link.csv",
        "--overwrite",
    )
    assert code == 2 and "symbolic link" in err and real.read_text() == "keep"
    code, _, err = _run(
        capsys, "predict", "--run", runs["c"], "--input", runs["cls"], "--output", real
    )
    assert code == 2 and "--overwrite" in err and real.read_text() == "keep"
    code, _, err = _run(
        capsys,
        "predict",
        "--run",
        runs["c"],
        "--input",
        runs["cls"],
        "--output",
        real,
        "--overwrite",
    )
    assert code == 0 and real.read_text().startswith("prediction")


def test_overwrite_refuses_a_folder_that_is_not_a_run_and_keeps_user_files(runs, capsys, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"user")
    code, _, err = _run(
        capsys,
        "train",
        "--data",
        "xor",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--out",
        mine,
        "--overwrite",
        "--quiet",
    )
    assert code == 2 and "not a jaxbp run" in err
    assert (mine / "holiday.png").read_bytes() == b"user"
    run = _copy(runs["c"], tmp_path / "run")
    (run / "notes.png").write_bytes(b"user")
    code, _, err = _run(
        capsys,
        "train",
        "--data",
        "xor",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--out",
        run,
        "--overwrite",
        "--quiet",
    )
    assert code == 0, err
    assert (run / "notes.png").read_bytes() == b"user"


def test_a_first_save_that_fails_leaves_no_folder(capsys, tmp_path, monkeypatch):
    from jaxbp.runs import files

    real = files.atomic.write_with

    def too_large(path, writer, **kw):
        if str(path).endswith("checkpoint.npz"):
            raise OSError(errno.EFBIG, "File too large")
        return real(path, writer, **kw)

    monkeypatch.setattr(files.atomic, "write_with", too_large)
    out = tmp_path / "run"
    code, _, err = _run(
        capsys, "train", "--data", "xor", "--epochs", "1", "--hidden", "4", "--out", out, "--quiet"
    )
    assert code == 2 and "checkpoint.npz: File too large" in err
    assert len(err.strip().splitlines()) == 2  # the header, then one error line
    assert not out.exists()


def test_a_second_writer_exits_2_naming_the_holder(runs, capsys, tmp_path):
    run = _copy(runs["c"], tmp_path / "run")
    with writer_lock(run):
        for argv in (
            ["train", "--resume", run, "--epochs", "5"],
            ["train", "--data", "xor", "--out", run, "--overwrite"],
        ):
            code, _, err = _run(capsys, *argv)
            assert code == 2 and f"pid {os.getpid()}" in err
        code, _, err = _run(capsys, "evaluate", "--run", run)  # readers never lock
        assert code == 0, err


# --------------------------------------------------------------------------- the newcomer


def test_a_misspelt_flag_is_one_line_with_a_suggestion(capsys):
    code, _, err = _run(capsys, "train", "--hiden", "3")
    assert code == 2 and err.strip().count("\n") == 0 and "did you mean --hidden?" in err
    code, _, err = _run(capsys, "train", "--hidden", "zero")
    assert code == 2 and err.strip().count("\n") == 0 and "usage" not in err


def test_integral_labels_classify_and_say_so(capsys, tmp_path):
    tiny = _write_csv(tmp_path / "tiny.csv", ["x", "y"], [[i / 10, i % 2] for i in range(10)])
    code, _, err = _run(
        capsys,
        "train",
        "--data",
        tiny,
        "--target",
        "y",
        "--epochs",
        "1",
        "--hidden",
        "2",
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    assert code == 0, err and "classification" in err and "--head squared" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["task"] == "classification"


def test_experiment_refuses_a_non_empty_out_folder(capsys, tmp_path):
    (tmp_path / "bp-cost").mkdir()
    (tmp_path / "bp-cost" / "results.json").write_text("{}")
    code, _, err = _run(capsys, "experiment", "bp-cost", "--quick", "--out", tmp_path)
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "bp-cost" / "results.json").read_text() == "{}"


# --------------------------------------------------------------------------- signals

_SLOW = [
    "train",
    "--data",
    "digits",
    "--hidden",
    "256",
    "--batch-size",
    "8",
    "--epochs",
    "1000000",  # never ends by itself: a fast machine ran 3000 epochs before the signal
    "--quiet",
]


def _signal_run(argv, signals, *, timeout=240):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxbp.cli", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for wait, signum in signals:
            time.sleep(wait)
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_sigterm_commits_checkpoint_and_history_together_and_exits_143(tmp_path):
    out = tmp_path / "run"
    code, err = _signal_run([*_SLOW, "--out", out], [(10.0, signal.SIGTERM)])
    assert "Traceback" not in err
    if not (out / "checkpoint.npz").exists():
        assert code in (143, -signal.SIGTERM) and not out.exists()
        pytest.skip("the machine was too slow to finish an epoch before SIGTERM")
    assert code == 143, err[-1500:]
    ckpt = checkpoint.load(out / "checkpoint.npz")
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"][-1] == ckpt.epoch and (out / "loss.png").exists()
    assert f"--resume {out}" in err
    code, err = _signal_run(["train", "--resume", out, "--quiet"], [(8.0, signal.SIGHUP)])
    assert code == 129 and "Traceback" not in err, err[-1500:]
    ckpt = checkpoint.load(out / "checkpoint.npz")
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"][-1] == ckpt.epoch


def test_a_signal_before_the_first_epoch_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    code, err = _signal_run([*_SLOW, "--out", out], [(2.5, signal.SIGTERM)])
    assert code in (143, -signal.SIGTERM) and "Traceback" not in err
    assert not out.exists() or (out / "checkpoint.npz").exists()


@pytest.mark.parametrize("after_s", [0.4, 1.2])
def test_predict_exits_with_the_signal_and_leaves_no_partial_output(runs, tmp_path, after_s):
    output = tmp_path / "p.csv"
    argv = ["predict", "--run", runs["c"], "--input", runs["cls"], "--output", output]
    code, err = _signal_run(argv, [(after_s, signal.SIGTERM)], timeout=120)
    assert "Traceback" not in err and code in (0, 143, -signal.SIGTERM), err[-1500:]
    if output.exists():  # complete or absent, never half
        assert len(output.read_text().splitlines()) == len(runs["label"]) + 1
    else:
        assert code != 0


def test_a_damaged_compilation_cache_falls_back_with_one_warning(runs, tmp_path):
    env = {**os.environ, "JAXBP_CACHE_DIR": str(tmp_path / "cache"), "PYTHONWARNINGS": "default"}
    argv = [sys.executable, "-m", "jaxbp.cli", "evaluate", "--run", str(runs["c"])]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    entries = sorted((tmp_path / "cache").glob("*-cache"))
    assert len(entries) >= 2
    contents = [p.read_bytes() for p in entries]
    for path, data in zip(entries, contents[1:] + contents[:1], strict=True):
        path.write_bytes(data)  # every entry now holds another program
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr[-1500:]
    assert second.stdout == first.stdout
    warnings = [line for line in second.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "compilation cache" in warnings[0]


def test_a_run_written_from_python_is_read_by_evaluate(capsys, tmp_path):
    import jax

    from jaxbp.cli.config import RunConfig
    from jaxbp.runs import write_run

    cfg = RunConfig(data="xor", hidden=4, epochs=2)
    cfg = cfg.with_data(cfg.load_data())
    net = cfg.net()
    config = {k: v for k, v in json.loads(cfg.to_json()).items() if v is not None}
    del config["x64"], config["seeds"]  # defaults a writer may leave out
    write_run(tmp_path / "r", config, net=net, params=cfg.init_params(net, jax.random.key(0)))
    code, out, err = _run(capsys, "evaluate", "--run", tmp_path / "r")
    assert code == 0 and "accuracy" in out, err


def test_experiment_files_follow_the_umask(tmp_path):
    from jaxbp.cli.experiments import common

    umask = os.umask(0o022)
    try:
        path = common.write_json(tmp_path / "results.json", {"a": 1})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("after_s", [0.4, 0.8])  # after site.py: the interpreter, not jaxbp
def test_an_early_ctrl_c_exits_130_without_a_traceback(runs, after_s):
    code, err = _signal_run(["evaluate", "--run", runs["c"]], [(after_s, signal.SIGINT)])
    assert code == 130 and "Traceback" not in err, err[-1500:]


def test_evaluate_refuses_a_target_other_than_the_runs(runs, capsys):
    code, _, err = _run(
        capsys, "evaluate", "--run", runs["c"], "--data", runs["cls"], "--target", "a"
    )
    assert code == 2 and "--target a" in err and "'label'" in err


def test_an_interrupted_experiment_leaves_nothing(capsys, tmp_path, monkeypatch):
    from jaxbp.cli import experiments
    from jaxbp.cli.experiments import common

    def half_done(name, out, *, quick, seed):
        common.write_json(Path(out) / name / "results.json", {"half": True})
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", half_done)
    out = tmp_path / "exp"
    code, _, err = _run(capsys, "experiment", "bp-cost", "--out", out)
    assert code == 130 and "interrupted" in err
    assert not out.exists()
