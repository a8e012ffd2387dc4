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
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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


def battery(folder: Path, flips: int = 40):
    """Run every case; returns a list of (name, verdict, detail)."""
    run = _train(folder)
    reference = _call(["evaluate", "--run", run])[1].splitlines()[1:]  # the metrics
    results = []
    cases = [
        *_flags(run, folder),
        *_config_edits(run, folder),
        *_checkpoint_damage(run, folder, flips),
    ]
    for name, argv, word in cases:
        code, out, err = _call(argv)
        lines = err.strip().splitlines()
        if word == "FLIP" and code == 0:
            verdict = "correct result" if out.splitlines()[1:] == reference else "WRONG RESULT"
        elif code == 2 and "Traceback" not in err and (word == "FLIP" or word in err):
            errors = [line for line in lines if "error:" in line]  # argparse adds its usage
            verdict = "clear error" if len(errors) == 1 else "LONG MESSAGE"
        else:
            verdict = "OTHER"
        results.append((name, verdict, lines[-1] if lines else f"exit {code}"))
    return results


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
