"""Export a session as a jaxbp run folder that ``jaxbp evaluate``, ``predict`` and
``train --resume`` accept: ``config.json``, ``checkpoint.npz``, ``history.json`` and
``history.csv`` (and ``data.csv`` when the data is not a built-in set at its defaults).

Everything is written by the run folder's one writer, ``jaxbp.runs.write_run``, in
:func:`write_run`, the one place that writes a run folder here. Only the folder
``root / name`` is written: ``name`` is one plain folder name (no path), and a folder
that exists and is not empty is refused.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from jaxbp.cli import runs
from jaxbp.playground import datasets
from jaxbp.playground.session import Refused, Session
from jaxbp.runs import fingerprint, new_run_id
from jaxbp.runs import write_run as write_run_folder

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
DATA_FILE = "data.csv"


def folder_for(root: Path, name) -> Path:
    """``root / name`` for a plain folder name; Refused for anything else (paths, '..')."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise Refused(
            f"export name {str(name)[:60]!r}: use letters, digits, '.', '_' and '-' only "
            f"(the run folder is made inside {root})"
        )
    return Path(root) / name


def export(session: Session, root: Path, name: str) -> Path:
    """Write ``session`` as a run folder ``root / name``; returns its path."""
    out = folder_for(root, name)
    if session.settings.test_fraction != datasets.DEFAULT_TEST_FRACTION:
        raise Refused(
            "export needs the 20 % test split: jaxbp evaluate and --resume split the data "
            "80/20 again; set the test fraction to 0.2 and train again"
        )
    if out.is_symlink():
        raise Refused(f"{out} is a symbolic link; exports are written only inside {root}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Refused(f"{out} already exists and is not an empty folder; choose another name")
    existed = out.exists()
    try:
        return write_run(out, session)
    except BaseException:
        if out.is_dir():  # it was empty or absent: everything in it is this export's
            for leftover in out.iterdir():
                if leftover.is_file() and not leftover.is_symlink():
                    leftover.unlink()
            if not existed and not any(out.iterdir()):
                out.rmdir()
        raise


def write_run(out: Path, session: Session) -> Path:
    """The session as a run folder, through :func:`jaxbp.runs.write_run` (the run folder's
    one writer: manifest, run id, data fingerprint, writer lock, atomic files): the one
    function here that writes a run folder.

    The data is named so that ``cfg.load_data()`` gives exactly the session's split:
    the built-in name and seed, or ``data.csv`` in the folder. The split is first
    reloaded from a scratch copy and compared with the session's, and the export is
    refused if they differ; nothing is written before that check.
    """
    source, cfg = session.source, session.cfg
    extra: dict[str, bytes | str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if source.kind == "name":
            probe = dataclasses.replace(cfg, data=session.settings.data, target=None)
        else:
            if source.kind == "upload":
                content = source.content
                target = session.settings.target or session.upload.columns[-1]
            else:
                content, target = _rows_csv(source.X, source.y).encode(), "y"
            trial = Path(scratch) / DATA_FILE
            trial.write_bytes(content)
            probe = dataclasses.replace(cfg, data=str(trial), target=target)
            extra[DATA_FILE] = content
        reloaded = probe.load_data()
        if not datasets.same_split(reloaded, session.ds):
            raise Refused(f"the exported data would not reload as the session's split ({cfg.data})")
        cfg = dataclasses.replace(
            probe.with_data(reloaded), epochs=max(cfg.epochs, session.epoch, 1),
            run_id=new_run_id(), fingerprint=fingerprint(probe.data, seed=probe.seed),
        )  # fmt: skip
    if DATA_FILE in extra:  # the run reads its data from the copy inside the folder
        cfg = dataclasses.replace(cfg, data=str((out / DATA_FILE).resolve()))
    result = session.fit_result()
    extra["history.json"] = json.dumps(result.history, indent=1)
    extra["history.csv"] = runs.history_csv(result.history)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_run_folder(
        out, json.loads(cfg.to_json()), net=cfg.net(), params=result.params,
        opt_state=result.opt_state, epoch=result.epoch, key=session.fit_key,
        history=result.history, extra=extra,
    )  # fmt: skip


def _rows_csv(X: np.ndarray, y: np.ndarray) -> str:
    """Raw rows as CSV: columns x1..xd and y; floats written to round-trip exactly."""
    header = ",".join([*(f"x{j + 1}" for j in range(X.shape[1])), "y"])
    lines = [header]
    for row, label in zip(X.tolist(), np.asarray(y).tolist(), strict=True):
        lines.append(",".join([*map(repr, row), repr(label)]))
    return "\n".join(lines) + "\n"
