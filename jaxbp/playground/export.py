"""Export a session as a jaxbp run folder that ``jaxbp evaluate``, ``predict`` and
``train --resume`` accept: ``config.json``, ``checkpoint.npz``, ``history.json`` and
``history.csv`` (and ``data.csv`` when the data is not a built-in set at its defaults).

Everything is written by the run-folder functions of ``jaxbp.cli.runs`` in
:func:`write_run`, the one place that writes a run folder here. Only the folder
``root / name`` is written: ``name`` is one plain folder name (no path), and a folder
that exists and is not empty is refused.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from jaxbp import atomic
from jaxbp.cli import runs
from jaxbp.playground import datasets
from jaxbp.playground.session import Refused, Session

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
    """The run folder's files, through ``jaxbp.cli.runs`` (config, checkpoint, history):
    the one function here that writes a run folder.

    The data is named so that ``cfg.load_data()`` gives exactly the session's split:
    the built-in name and seed, or ``data.csv`` in the folder; the reloaded split is
    compared with the session's, and the export refused if they differ.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.prepare_folder(out, overwrite=False)
    source, cfg = session.source, session.cfg
    if source.kind == "name":
        cfg = dataclasses.replace(cfg, data=session.settings.data, target=None)
    else:
        path = (out / DATA_FILE).resolve()
        if source.kind == "upload":
            atomic.write_bytes(path, source.content)
            target = session.settings.target or session.upload.columns[-1]
        else:
            atomic.write_text(path, _rows_csv(source.X, source.y))
            target = "y"
        cfg = dataclasses.replace(cfg, data=str(path), target=target)
    reloaded = cfg.load_data()
    if not datasets.same_split(reloaded, session.ds):
        raise Refused(f"the exported data would not reload as the session's split ({cfg.data})")
    cfg = dataclasses.replace(cfg, epochs=max(cfg.epochs, session.epoch, 1)).with_data(reloaded)
    result = session.fit_result()
    runs.write_config(out, cfg)
    runs.save_checkpoint(out, cfg, result, session.fit_key)
    atomic.write_text(out / "history.json", json.dumps(result.history, indent=1))
    atomic.write_text(out / "history.csv", runs.history_csv(result.history))
    return out


def _rows_csv(X: np.ndarray, y: np.ndarray) -> str:
    """Raw rows as CSV: columns x1..xd and y; floats written to round-trip exactly."""
    header = ",".join([*(f"x{j + 1}" for j in range(X.shape[1])), "y"])
    lines = [header]
    for row, label in zip(X.tolist(), np.asarray(y).tolist(), strict=True):
        lines.append(",".join([*map(repr, row), repr(label)]))
    return "\n".join(lines) + "\n"
