"""A battery of bad command lines and damaged run folders against the ``jaxbp`` command.

Each case runs ``jaxbp.cli.main`` in this process and counts as right when it exits 2
with exactly one error line on stderr that contains the expected word (the flag, file
or field at fault), and no traceback. Damaged run folders are copies of one small
trained run: edited ``config.json`` files, foreign files, and one-bit flips of the
checkpoint (a flip may also leave the file intact: then ``evaluate`` must succeed and
report the same numbers as the undamaged run).

Usage: ``python scripts/bad_cli_inputs.py`` (prints a table and the counts; exit 1 if
anything was not a clear error). ``tests/test_bad_inputs.py`` runs it in the suite.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from jaxbp.cli import main  # noqa: E402


def _call(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
        except BaseException as exc:  # anything else is what we count
            return -1, out.getvalue(), f"{type(exc).__name__}: {exc}"
    return code, out.getvalue(), err.getvalue()


def _train(folder: Path) -> Path:
    run = folder / "good"
    argv = ["train", "--data", "blobs", "--hidden", "4", "--epochs", "1", "--out", run, "--quiet"]
    code, _, err = _call(argv)
    if code != 0:
        raise RuntimeError(f"could not train the reference run: {err}")
    return run


def _copy(run: Path, folder: Path, name: str) -> Path:
    dst = folder / name
    shutil.copytree(run, dst)
    return dst


def _config_edits(run: Path, folder: Path):
    config = json.loads((run / "config.json").read_text())
    edits = {
        "head missing": ({k: v for k, v in config.items() if k != "head"}, "head"),
        "a list": ([1, 2], "JSON object"),
        "activation tanh": (config | {"activation": "tanh"}, "network"),
        "hidden text": (config | {"hidden": "many"}, "hidden"),
        "hidden 0": (config | {"hidden": 0}, "hidden"),
        "hidden 999": (config | {"hidden": 999}, "params.V"),
        "lr negative": (config | {"lr": -1}, "lr"),
        "lr text": (config | {"lr": "fast"}, "lr"),
        "optimizer unknown": (config | {"optimizer": "lbfgs"}, "optimizer"),
        "batch_size -3": (config | {"batch_size": -3}, "batch_size"),
        "scaler short": (config | {"scaler": {"mean": [0], "std": [1]}}, "scaler"),
        "scaler zero std": (config | {"scaler": {"mean": [0, 0], "std": [0, 1]}}, "scaler"),
        "classes repeated": (config | {"classes": [0, 0, 1]}, "classes"),
        "bias flipped": (config | {"bias": not config["bias"]}, "bias"),
        "x64 flipped": (config | {"x64": True}, "config.json"),
        "format foreign": (config | {"format": "other"}, "jaxbp-run"),
        "seed negative": (config | {"seed": -1}, "seed"),
        "task unknown": (config | {"task": "ranking"}, "task"),
    }
    texts = {
        "empty file": ("", "JSON"),
        "not JSON": ("{", "JSON"),
        "deep nesting": ("[" * 100_000, "JSON"),
        "not UTF-8": (b"\xff\xfe\x00", "UTF-8"),
    }
    for name, (doc, word) in edits.items():
        texts[name] = (json.dumps(doc), word)
    for name, (text, word) in texts.items():
        dst = _copy(run, folder, f"config-{len(list(folder.iterdir()))}")
        path = dst / "config.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        yield f"config.json: {name}", ["evaluate", "--run", dst], word
        yield f"resume with config.json: {name}", ["train", "--resume", dst, "--quiet"], word


def _checkpoint_damage(run: Path, folder: Path, flips: int):
    good = (run / "checkpoint.npz").read_bytes()
    dst = _copy(run, folder, "ckpt-missing")
    (dst / "checkpoint.npz").unlink()
    yield "checkpoint missing", ["evaluate", "--run", dst], "checkpoint"
    dst = _copy(run, folder, "ckpt-text")
    (dst / "checkpoint.npz").write_text("not a checkpoint")
    yield "checkpoint is text", ["evaluate", "--run", dst], "checkpoint"
    dst = _copy(run, folder, "ckpt-truncated")
    (dst / "checkpoint.npz").write_bytes(good[: len(good) // 2])
    yield "checkpoint truncated", ["evaluate", "--run", dst], "checkpoint"
    for i in range(flips):
        position = (i * 7919) % len(good)
        damaged = bytearray(good)
        damaged[position] ^= 1 << (i % 8)
        dst = folder / "flip"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(run, dst)
        (dst / "checkpoint.npz").write_bytes(bytes(damaged))
        yield f"checkpoint bit flip at byte {position}", ["evaluate", "--run", dst], "FLIP"


def _flags(run: Path, folder: Path):
    a_file = folder / "a-file.txt"
    a_file.write_text("keep")
    csv = folder / "bad.csv"
    csv.write_text("x,y\n1,2\nthree,4\n5,6\n7,8\n")
    cases = [
        (["train", "--activation", "swish"], "swish"),
        (["train", "--hidden", "0"], "--hidden"),
        (["train", "--hidden", "abc"], "--hidden"),
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--lr", "nan"], "--lr"),
        (["train", "--lr", "inf"], "--lr"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--epochs", "1.5"], "--epochs"),
        (["train", "--batch-size", "abc"], "--batch-size"),
        (["train", "--batch-size", "0"], "--batch-size"),
        (["train", "--weight-decay", "-0.1"], "--weight-decay"),
        (["train", "--seed", "-1"], "--seed"),
        (["train", "--seeds", "0"], "--seeds"),
        (["train", "--optimizer", "lbfgs"], "lbfgs"),
        (["train", "--schedule", "step"], "step"),
        (["train", "--grad", "magic"], "magic"),
        (["train", "--head", "hinge"], "hinge"),
        (["train", "--data", "nope"], "nope"),
        (["train", "--data", folder / "missing.csv", "--target", "y"], "missing.csv"),
        (["train", "--data", csv, "--target", "y"], "three"),
        (["train", "--data", csv, "--target", "z"], "'z'"),
        (["train", "--data", csv], "--target"),
        (["train", "--data", "moons", "--target", "y"], "target"),
        (["train", "--head", "logistic"], "--head logistic"),
        (["train", "--data", "sine", "--head", "softmax"], "--head softmax"),
        (["train", "--output", "tanh"], "--output"),
        (["train", "--x64", "--bf16"], "--bf16"),
        (["train", "--devices", "64"], "devices=64"),
        (["train", "--out", run], "--resume"),
        (["train", "--out", a_file], "existing file"),
        (["train", "--resume", folder / "no-such-run"], "does not exist"),
        (["train", "--resume", a_file], "does not exist"),
        (["train", "--resume", run, "--hidden", "16"], "--hidden 16"),
        (["train", "--resume", run, "--activation", "tanh"], "--activation tanh"),
        (["train", "--resume", run, "--optimizer", "sgd"], "--optimizer sgd"),
        (["train", "--resume", run, "--data", "circles"], "--data circles"),
        (["train", "--resume", run, "--lr", "0.5"], "--lr 0.5"),
        (["train", "--resume", run, "--batch-size", "full"], "--batch-size full"),
        (["evaluate", "--run", folder / "no-such-run"], "does not exist"),
        (["evaluate", "--run", a_file], "does not exist"),
        (["evaluate", "--run", folder], "config.json"),
        (["evaluate", "--run", run, "--data", "sine"], "features"),
        (["evaluate", "--run", run, "--data", "digits"], "features"),
        (["predict", "--run", run, "--input", folder / "none.npz"], "none.npz"),
        (["predict", "--run", run, "--input", a_file], "a-file.txt"),
        (["predict", "--run", run, "--input", csv], "three"),
        (["explain", "--hidden", "0"], "--hidden"),
        (["gradcheck", "--n", "-2"], "--n"),
        (["experiment", "nope"], "nope"),
        (["frobnicate"], "frobnicate"),
    ]
    for argv, word in cases:
        yield " ".join(str(a) for a in argv)[:70], argv, word


def _csv_run(folder: Path) -> tuple[Path, Path]:
    """A small classifier trained on a CSV (columns a, b, label), and that CSV."""
    data = folder / "train.csv"
    lines = ["a,b,label"] + [f"{i % 7 - 3},{(i * 3) % 5 - 2},{int(i % 7 > 3)}" for i in range(60)]
    data.write_text("\n".join(lines) + "\n")
    run = folder / "csv-run"
    argv = [
        "train",
        "--data",
        data,
        "--target",
        "label",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--out",
        run,
        "--quiet",
    ]
    code, _, err = _call(argv)
    if code != 0:
        raise RuntimeError(f"could not train the CSV run: {err}")
    return run, data


def _unchanged(*paths: Path):
    """A check that ``paths`` keep their bytes (or stay absent) and their kind."""
    before = {p: (p.is_symlink(), p.read_bytes() if p.is_file() else None) for p in paths}

    def check():
        for p, (link, data) in before.items():
            now = p.read_bytes() if p.is_file() else None
            if p.is_symlink() != link or now != data:
                return f"{p} changed"
        return None

    return check


def _run_folder_attacks(run: Path, folder: Path):
    """Lost work, bad kinds of files, identity and schema: the run-folder families."""
    csv_run, data = _csv_run(folder)
    a_file = folder / "user.csv"
    a_file.write_text("mine")
    fifo = folder / "a-fifo"
    os.mkfifo(fifo)
    (folder / "a-dir").mkdir()
    to_user = folder / "to-user.csv"
    to_user.symlink_to(a_file)
    to_ckpt = folder / "to-ckpt.npz"
    to_ckpt.symlink_to(csv_run / "checkpoint.npz")
    predict = ["predict", "--run", csv_run, "--input", data, "--output"]
    own = [p.name for p in sorted(csv_run.iterdir())]
    for name in own:  # the run's own files, with and without --overwrite
        target = csv_run / name
        yield (f"predict --output RUN/{name}", [*predict, target], name, _unchanged(target))
        yield (
            f"predict --output RUN/{name} --overwrite",
            [*predict, target, "--overwrite"],
            name,
            _unchanged(target),
        )
    for label, target, word in [
        ("the input file", data, "input"),
        ("a symlink to a user file", to_user, "symbolic link"),
        ("a symlink to the checkpoint", to_ckpt, "symbolic link"),
        ("/dev/null", Path("/dev/null"), "device"),
        ("a FIFO", fifo, "FIFO"),
        ("a folder", folder / "a-dir", "folder"),
    ]:
        for extra in ([], ["--overwrite"]):
            yield (
                f"predict --output {label} {' '.join(extra)}".strip(),
                [*predict, target, *extra],
                word,
                _unchanged(a_file, data, csv_run / "checkpoint.npz"),
            )
    yield (
        "predict --output an existing file",
        [*predict, a_file],
        "--overwrite",
        _unchanged(a_file),
    )
    yield (
        "predict --output in a missing folder",
        [*predict, folder / "no" / "p.csv"],
        "does not exist",
        None,
    )

    # What is read: FIFOs, devices, folders, huge files, zip bombs, pickles.
    def damaged(name: str, make) -> Path:
        dst = _copy(csv_run, folder, name)
        make(dst)
        return dst

    def swap(member: str, how):
        def make(dst: Path):
            (dst / member).unlink()
            how(dst / member)

        return make

    kinds = {
        "a FIFO": (lambda p: os.mkfifo(p), "FIFO"),
        "a link to /dev/zero": (lambda p: p.symlink_to("/dev/zero"), "device"),
        "a folder": (lambda p: p.mkdir(), "folder"),
    }
    for kind, (how, word) in kinds.items():
        dst = damaged(f"cfg-{word}", swap("config.json", how))
        yield f"config.json is {kind} (evaluate)", ["evaluate", "--run", dst], word, None
        yield f"config.json is {kind} (resume)", ["train", "--resume", dst, "--quiet"], word, None
        dst = damaged(f"ckpt-{word}", swap("checkpoint.npz", how))
        yield f"checkpoint.npz is {kind}", ["evaluate", "--run", dst], "checkpoint", None
    dst = damaged("cfg-huge", lambda d: (d / "config.json").write_text(" " * 5_000_000 + "{}"))
    yield "config.json of 5 MB", ["evaluate", "--run", dst], "bytes", None
    bomb = folder / "bomb.npz"
    _npz_bomb(bomb)
    pickled = folder / "pickled.npz"
    np.savez(pickled, X=np.array([object()], dtype=object), y=np.zeros(1))
    zero = folder / "zero.csv"
    zero.symlink_to("/dev/zero")
    fifo_csv = folder / "fifo.csv"
    os.mkfifo(fifo_csv)
    for label, path, word in [
        ("an npz claiming 4.8 GB", bomb, "claims"),
        ("an npz of Python objects", pickled, "pickle"),
        ("/dev/zero as CSV", zero, "device"),
        ("a FIFO as CSV", fifo_csv, "FIFO"),
    ]:
        yield f"predict --input {label}", ["predict", "--run", csv_run, "--input", path], word, None
        yield f"evaluate --data {label}", ["evaluate", "--run", csv_run, "--data", path], word, None
    yield (
        "train --data an npz bomb",
        ["train", "--data", bomb, "--out", folder / "t1"],
        "claims",
        None,
    )
    yield (
        "train --data a FIFO",
        ["train", "--data", fifo_csv, "--target", "label", "--out", folder / "t2"],
        "FIFO",
        None,
    )

    # Identity: a checkpoint from another run, edited config fields.
    other = _copy(csv_run, folder, "other-ckpt")
    shutil.copy(run / "checkpoint.npz", other / "checkpoint.npz")
    yield "checkpoint of another run", ["evaluate", "--run", other], "belongs to run", None
    twin_folder = folder / "twin"
    _call(
        [
            "train",
            "--data",
            data,
            "--target",
            "label",
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--out",
            twin_folder,
            "--quiet",
        ]
    )
    twin = _copy(csv_run, folder, "twin-ckpt")
    shutil.copy(twin_folder / "checkpoint.npz", twin / "checkpoint.npz")
    ids = json.loads((twin_folder / "config.json").read_text())["run_id"]
    yield "same shapes, another run's checkpoint", ["evaluate", "--run", twin], ids, None
    yield (
        "resume with another run's checkpoint",
        ["train", "--resume", twin, "--epochs", "3"],
        ids,
        None,
    )
    config = json.loads((csv_run / "config.json").read_text())
    for field, value in [
        ("seed", 5),
        ("lr", 0.5),
        ("weight_decay", 0.1),
        ("epochs", 1),
        ("schedule", "cosine"),
        ("optimizer", "sgd"),
        ("target", "a"),
        ("fingerprint", "sha256:00"),
        ("run_id", "0123456789abcdef"),
        ("features", ["b", "a"]),
    ]:
        if field == "epochs":
            continue  # epochs may differ (a resumed run's total)
        dst = damaged(
            f"field-{field}",
            lambda d, f=field, v=value: (d / "config.json").write_text(json.dumps(config | {f: v})),
        )
        word = "run" if field == "run_id" else field
        yield f"config.json field {field} edited", ["evaluate", "--run", dst], word, None

    # The data behind a run changed.
    moved = folder / "moving.csv"
    shutil.copy(data, moved)
    moving_run = folder / "moving-run"
    _call(
        [
            "train",
            "--data",
            moved,
            "--target",
            "label",
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--out",
            moving_run,
            "--quiet",
        ]
    )
    with moved.open("a") as fh:
        fh.write("9,9,1\n")
    yield "evaluate --run after its CSV changed", ["evaluate", "--run", moving_run], "changed", None
    yield (
        "resume after its CSV changed",
        ["train", "--resume", moving_run, "--epochs", "3"],
        "changed",
        None,
    )

    # Schema: features by name, the run's classes, the run's task.
    (folder / "no_b.csv").write_text("a,label\n1,0\n2,1\n")
    (folder / "dog.csv").write_text("a,b,label\n1,1,0\n2,2,dog\n")
    (folder / "huge.csv").write_text("a,b,label\n1,1,0\n1e300,2,1\n")
    np.savez(folder / "wide.npz", X=np.zeros((4, 5)), y=np.zeros(4))
    np.savez(folder / "nan.npz", X=np.array([[0.0, np.nan], [1, 1]]), y=np.zeros(2))
    for label, path, word in [
        ("a CSV without column b", folder / "no_b.csv", "'b'"),
        ("a label the run never saw", folder / "dog.csv", "dog"),
        ("a value overflowing float32", folder / "huge.csv", "overflows"),
        ("an npz of 5 features", folder / "wide.npz", "features"),
        ("an npz with NaN", folder / "nan.npz", "NaN"),
    ]:
        yield f"evaluate --data {label}", ["evaluate", "--run", csv_run, "--data", path], word, None
        if "label" not in label:  # predict reads features only
            yield (
                f"predict --input {label}",
                ["predict", "--run", csv_run, "--input", path],
                word,
                None,
            )

    yield (
        "evaluate --target another column",
        ["evaluate", "--run", csv_run, "--data", data, "--target", "a"],
        "--target a",
        None,
    )
    yield (
        "evaluate --target with an npz",
        ["evaluate", "--run", csv_run, "--data", folder / "wide.npz", "--target", "label"],
        "CSV",
        None,
    )

    # Resume flags that mean nothing, folders that are not runs, misspelt flags.
    yield "resume with --out", ["train", "--resume", csv_run, "--out", folder / "x"], "--out", None
    yield (
        "resume with --overwrite",
        ["train", "--resume", csv_run, "--overwrite"],
        "--overwrite",
        None,
    )
    user_dir = folder / "photos"
    user_dir.mkdir()
    (user_dir / "cat.png").write_bytes(b"png")
    yield (
        "train --out a non-run folder --overwrite",
        ["train", "--data", "xor", "--out", user_dir, "--overwrite"],
        "not a jaxbp run",
        _unchanged(user_dir / "cat.png"),
    )
    exp = folder / "exp"
    (exp / "bp-cost").mkdir(parents=True)
    (exp / "bp-cost" / "results.json").write_text("{}")
    yield (
        "experiment --out a non-empty folder",
        ["experiment", "bp-cost", "--quick", "--out", exp],
        "--overwrite",
        _unchanged(exp / "bp-cost" / "results.json"),
    )
    for argv, word in [
        (["train", "--hiden", "3"], "did you mean --hidden?"),
        (["train", "--epcohs", "3"], "did you mean --epochs?"),
        (["train", "--batchsize", "3"], "did you mean --batch-size?"),
        (["train", "--optimiser", "sgd"], "did you mean --optimizer?"),
        (["train", "--activaton", "relu"], "did you mean --activation?"),
        (["train", "--overwite"], "did you mean --overwrite?"),
        (["train", "--resme", "x"], "did you mean --resume?"),
        (
            ["predict", "--run", csv_run, "--input", data, "--ouput", "p.csv"],
            "did you mean --output?",
        ),
        (["evaluate", "--rum", csv_run], "did you mean --run?"),
    ]:
        yield " ".join(str(a) for a in argv)[:70], argv, word, None


def _npz_bomb(path: Path) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (600_000_000,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", buffer.getvalue())
        archive.writestr("y.npy", buffer.getvalue())


def _locked_cases(run: Path, folder: Path):
    """While this process holds a run's writer lock, other writers exit 2 naming it."""
    locked = _copy(run, folder, "locked")
    return locked, [
        ("resume a locked run", ["train", "--resume", locked, "--epochs", "3"], "pid", None),
        (
            "overwrite a locked run",
            ["train", "--data", "xor", "--out", locked, "--overwrite"],
            "pid",
            _unchanged(locked / "checkpoint.npz"),
        ),
    ]


def battery(folder: Path, flips: int = 40):
    """Run every case; returns a list of (name, verdict, detail)."""
    from jaxbp.runs import writer_lock

    run = _train(folder)
    reference = _call(["evaluate", "--run", run])[1].splitlines()[1:]  # the metrics
    results = []
    cases = [
        *((*c, None) for c in _flags(run, folder)),
        *((*c, None) for c in _config_edits(run, folder)),
        *((*c, None) for c in _checkpoint_damage(run, folder, flips)),
        *_run_folder_attacks(run, folder),
    ]
    locked, locked_cases = _locked_cases(run, folder)
    with writer_lock(locked):
        results += [_verdict(case, reference) for case in locked_cases]
    results += [_verdict(case, reference) for case in cases]
    return results


def _verdict(case, reference) -> tuple[str, str, str]:
    name, argv, word, check = case
    code, out, err = _call(argv)
    lines = err.strip().splitlines()
    problem = check() if check is not None else None
    if problem:
        verdict = "LOST FILE"
    elif word == "FLIP" and code == 0:
        verdict = "correct result" if out.splitlines()[1:] == reference else "WRONG RESULT"
    elif code == 2 and "Traceback" not in err and (word == "FLIP" or word in err):
        errors = [line for line in lines if "error:" in line]
        verdict = "clear error" if len(errors) == 1 and len(lines) <= 2 else "LONG MESSAGE"
    else:
        verdict = "OTHER"
    return name, verdict, problem or (lines[-1] if lines else f"exit {code}")


def main_(argv=None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        results = battery(Path(tmp))
    width = max(len(r[0]) for r in results)
    for name, verdict, detail in results:
        print(f"{name:<{width}}  {verdict:<14}  {detail[:110]}")
    counts = {v: sum(r[1] == v for r in results) for v in sorted({r[1] for r in results})}
    print(f"\ntried {len(results)}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    ok = {"clear error", "correct result"}
    return 0 if all(r[1] in ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main_())
