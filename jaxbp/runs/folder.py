"""A run folder as one unit: its identity, its manifest, and the one writer of its files.

A run folder holds ``config.json`` (the run's schema and settings), ``checkpoint.npz``,
``history.json``/``history.csv``, PNG plots, and :data:`~jaxbp.runs.files.MANIFEST`,
the list of every file the run wrote. Identity: a random **run id** made when the run
is created, stored in ``config.json`` and in the checkpoint's JSON, and a
**fingerprint** of the training data (a SHA-256 of a file's bytes, or a built-in data
set's name, version and seed).

Rules (see ``docs/runs.md``):

- :class:`RunFolder` writes every file of the run through
  :func:`jaxbp.runs.files.write_file` and lists it in the manifest *before* writing it;
- :func:`prepare` accepts an absent or empty folder, or a run folder with ``overwrite``
  (then only the files the manifest lists are removed); a non-empty folder that is not
  a run is refused even with ``overwrite``;
- a run folder is resumable or absent: :meth:`RunFolder.abandon` removes what a run
  wrote when its first checkpoint could not be committed.

Example (a run folder from Python, e.g. an app exporting its model):
    >>> import pathlib, tempfile, jax, jaxbp
    >>> from jaxbp.runs import write_run
    >>> net = jaxbp.Net(activation="tanh", head="squared")
    >>> params = jaxbp.init(net, jax.random.key(0), d=1, hidden=4, out=1)
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> config = {"data": "sine", "activation": "tanh", "hidden": 4, "head": "squared"}
    >>> write_run(folder, config, net=net, params=params).name
    'run'
    >>> sorted(p.name for p in folder.iterdir())
    ['checkpoint.npz', 'config.json', 'manifest.json']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from jaxbp import atomic
from jaxbp.runs import files
from jaxbp.runs.files import MANIFEST, UnsafeWriteError
from jaxbp.runs.lock import HOLDER, writer_lock

CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
MANIFEST_FORMAT = "jaxbp-run-manifest"
DATA_VERSION = 1
"""Version of the built-in data generators, part of a built-in set's fingerprint."""


def new_run_id() -> str:
    """A fresh random run id: 16 hex digits."""
    return secrets.token_hex(8)


def fingerprint(data: str, *, seed: int = 0) -> str:
    """The training data's identity: ``sha256:<hex>`` of a file, ``NAME:vN:seed=S`` else."""
    if Path(data).suffix.lower() in (".csv", ".npz"):
        fd, _ = files.open_regular(data, "data file")
        digest = hashlib.sha256()
        try:
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
        finally:
            os.close(fd)
        return "sha256:" + digest.hexdigest()
    return f"{data}:v{DATA_VERSION}:seed={seed}"


def _entries(folder: Path) -> list[str]:
    """What a folder holds, less the lock's holder file and temporary files."""
    return [
        n for n in os.listdir(folder)
        if n != HOLDER and not (n.startswith(".") and n.endswith(".tmp"))
    ]  # fmt: skip


def prepare(folder, *, overwrite: bool, flag: str = "--out") -> None:
    """Check (under the writer lock) that ``folder`` may hold a new run; clear it if asked.

    An empty folder is fine. A run folder is refused unless ``overwrite``; then only
    the files its manifest lists (or, for a run without a manifest, its fixed names)
    are removed. A non-empty folder that is not a run is refused, ``overwrite`` or not.
    """
    folder = Path(folder)
    entries = _entries(folder)
    if not entries:
        return
    names = files.run_files(folder)
    if names is None:
        raise UnsafeWriteError(
            f"{flag} {folder} is a non-empty folder that is not a jaxbp run (no {CONFIG}); "
            "jaxbp never deletes files it did not write: choose another folder"
        )
    if not overwrite:
        raise UnsafeWriteError(
            f"{flag} {folder} is a jaxbp run; continue it with --resume {folder}, choose "
            "another folder, or pass --overwrite to replace its run files"
        )
    for name in [*sorted(names - {MANIFEST}), MANIFEST]:
        if "/" in name or name in ("", ".", ".."):
            continue
        files.remove(folder / name)


def make(folder, *, flag: str = "--out") -> bool:
    """Create ``folder`` (and its parents); True if it did not exist before."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UnsafeWriteError(f"{flag} {folder} is an existing file, not a folder")
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    except OSError as err:
        raise files.WriteError(f"cannot create {folder}: {err.strerror}") from None
    return True


class RunFolder:
    """The one writer of a run folder's files.

    Every file goes through :func:`jaxbp.runs.files.write_file`, after its name was
    added to the manifest, so ``--overwrite`` can later remove exactly what the run wrote.
    """

    def __init__(self, folder, run_id: str | None = None, *, created: bool = False):
        self.folder, self.run_id, self.created = Path(folder), run_id, created
        listed = files.run_files(self.folder) if self._has_manifest() else None
        self.names: list[str] = sorted(listed - {MANIFEST}) if listed else []

    def _has_manifest(self) -> bool:
        return (self.folder / MANIFEST).is_file()

    def _write_manifest(self) -> None:
        doc = {"format": MANIFEST_FORMAT, "run_id": self.run_id, "files": self.names}
        files.write_file(
            self.folder / MANIFEST, json.dumps(doc, indent=1) + "\n", own_run=self.folder
        )

    def register(self, *names: str) -> None:
        """List ``names`` in the manifest before something else writes them (plots)."""
        new = [n for n in names if n not in self.names]
        if new:
            self.names.extend(new)
            self._write_manifest()

    def write(
        self,
        name: str,
        data: bytes | str | Callable[[IO[Any]], object],
        *,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> Path:
        """Write the run's file ``name`` (listed in the manifest first); return its path."""
        self.register(name)
        return files.write_file(
            self.folder / name, data, own_run=self.folder, encoding=encoding, newline=newline
        )

    def path(self, name: str) -> Path:
        return self.folder / name

    def abandon(self) -> None:
        """Remove every file the run wrote, and the folder if the run created it."""
        for name in [*self.names, MANIFEST]:
            with contextlib.suppress(OSError, ValueError):
                files.remove(self.folder / name)
            for temp in atomic.stale_temps(self.folder / name):
                with contextlib.suppress(OSError):
                    temp.unlink()
        self.names = []
        if self.created:
            with contextlib.suppress(OSError):
                (self.folder / HOLDER).unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only if empty: a user's file is never removed


def write_run(
    folder,
    config: dict,
    *,
    net,
    params,
    opt_state=None,
    epoch: int = 0,
    key=None,
    history: dict | None = None,
    extra: dict[str, bytes | str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a whole run folder from Python: checkpoint, ``config.json``, manifest, ``extra``.

    Args:
        folder: the run folder (created; an existing run only with ``overwrite``).
        config: the run's JSON settings (``jaxbp.cli.config.RunConfig.to_json`` keys);
            a ``run_id`` is added when absent. Stored in ``config.json`` and in the
            checkpoint's JSON.
        net, params, opt_state, epoch, key, history: as :func:`jaxbp.checkpoint.save`.
        extra: more files, ``{name: bytes or text}`` (e.g. ``history.json``, plots).
        overwrite: replace a run already in ``folder`` (only its own files).

    Returns:
        the folder. Under the writer lock; if the checkpoint cannot be written, nothing
        of the run stays behind.
    """
    from jaxbp import checkpoint

    folder = Path(folder)
    config = dict(config)
    config.setdefault("run_id", new_run_id())
    created = make(folder)
    with writer_lock(folder):
        prepare(folder, overwrite=overwrite)
        run = RunFolder(folder, config["run_id"], created=created)
        try:
            checkpoint.save(
                run.path(CHECKPOINT), net=net, params=params, opt_state=opt_state, epoch=epoch,
                key=key, history=history, config=config, folder=run,
            )  # fmt: skip
            run.write(CONFIG, json.dumps(config, indent=2))
            for name, data in (extra or {}).items():
                run.write(name, data)
        except BaseException:
            run.abandon()
            raise
    return folder
