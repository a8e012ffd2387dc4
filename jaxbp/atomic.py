"""Atomic file writes: a reader sees the old file or the new one, never a mixture.

Every file jaxbp writes for keeps (checkpoints, a run folder's ``config.json``,
``history.csv``/``history.json``, predictions) goes through :func:`write_with`:

1. the contents are written to a temporary file beside the target, in the same folder
   (so that the final rename never crosses a file system);
2. the temporary file is flushed and ``fsync``-ed, given the permissions of the file it
   replaces (a new file gets the default ``0o666`` less the umask, as ``open`` would),
   and renamed onto the target with :func:`os.replace`;
3. the folder is ``fsync``-ed, so that the rename itself survives a power cut.

If anything fails (an exception, ``KeyboardInterrupt``), the temporary file is removed
and the target is untouched. A process killed outright (``kill -9``, a power cut) can
still leave its temporary file behind; :func:`remove_stale_temps` removes those, and
every write calls it first.

Temporary names follow one pattern, :data:`TEMP_PATTERN`::

    .{target name}.{writer's process id}.{16 hex digits}.tmp

e.g. ``.checkpoint.npz.4242.9f86d081884c7d65.tmp`` for ``checkpoint.npz``. The leading
dot hides them from ``ls``; the process id tells a stale file (its writer is gone) from
one being written right now by another process, which is never removed. Stale-file
detection is exact for writers on the same machine (POSIX process ids); a folder shared
between machines should have one writer per target.

Example:
    >>> import pathlib, tempfile
    >>> from jaxbp import atomic
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> atomic.write_text(path, '{"lr": 0.1}\\n')
    >>> path.read_text()
    '{"lr": 0.1}\\n'
    >>> atomic.write_with(path, lambda f: f.write(b"{}"))
    >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
    ('{}', ['config.json'])
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
import secrets
import stat
import threading
from collections.abc import Callable
from typing import IO, Any

TEMP_PATTERN = ".{name}.{pid}.{token}.tmp"
"""How a temporary file beside the target ``name`` is named (``token``: 16 hex digits)."""

_ACTIVE: set[str] = set()  # temp files this process is writing now (any thread)
_ACTIVE_LOCK = threading.Lock()


def temp_name(name: str, pid: int | None = None) -> str:
    """A fresh temporary file name for the target ``name``, per :data:`TEMP_PATTERN`."""
    pid = os.getpid() if pid is None else pid
    return TEMP_PATTERN.format(name=name, pid=pid, token=secrets.token_hex(8))


def _temp_regex(name: str) -> re.Pattern:
    return re.compile(r"\." + re.escape(name) + r"\.([0-9]+)\.[0-9a-f]{16}\.tmp")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on POSIX; elsewhere every pid counts as alive)."""
    if pid == os.getpid():
        return False  # our own temps in flight are in _ACTIVE; others are from a dead namesake
    if os.name != "posix":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but belongs to someone else, or cannot be told: keep it
    return True


def stale_temps(path) -> list[pathlib.Path]:
    """The temporary files of target ``path`` whose writer is gone (see the module doc)."""
    path = pathlib.Path(path)
    pattern = _temp_regex(path.name)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    with _ACTIVE_LOCK:
        active = set(_ACTIVE)
    found = []
    for entry in sorted(names):
        match = pattern.fullmatch(entry)
        candidate = path.parent / entry
        if match and str(candidate) not in active and not _alive(int(match.group(1))):
            found.append(candidate)
    return found


def remove_stale_temps(path) -> list[pathlib.Path]:
    """Delete the temporary files a killed writer left beside ``path``; return them.

    Only names of :data:`TEMP_PATTERN` for this very target are touched, and only when
    the process that wrote them no longer exists; ``path`` itself and every other file
    are left alone. Files that vanish meanwhile or cannot be removed are skipped.
    """
    removed = []
    for temp in stale_temps(path):
        with contextlib.suppress(OSError):  # vanished, not ours to delete, read-only folder
            temp.unlink()
            removed.append(temp)
    return removed


def fsync_dir(folder) -> None:
    """Make renames in ``folder`` durable where the platform can open a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(
    path,
    writer: Callable[[IO[Any]], object],
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> None:
    """Atomically replace ``path`` by what ``writer(fileobj)`` writes.

    Args:
        path: the target file; its folder must exist.
        writer: called once with an open file beside ``path``: a binary file, or a text
            file when ``encoding`` is given. Its return value is ignored.
        encoding: for text, e.g. ``"utf-8"``; ``None`` (default) for bytes.
        newline: passed to the text file (``""`` for :mod:`csv` writers).

    On any exception (``BaseException``, so ``KeyboardInterrupt`` too) the temporary
    file is removed, the exception propagates and ``path`` is untouched. A ``path``
    that exists but is not a regular file (a symbolic link, a folder, a device, a FIFO)
    is refused with ``FileExistsError``: renaming onto it would replace the link or node.
    The rules of what may be written at all are :func:`jaxbp.runs.files.write_file`'s.
    """
    path = pathlib.Path(path)
    folder = path.parent
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):  # a link, folder, device or FIFO
        raise FileExistsError(f"{path} exists and is not a regular file; refusing to replace it")
    remove_stale_temps(path)
    try:
        mode = path.stat().st_mode & 0o7777  # keep the replaced file's permissions
    except OSError:
        mode = None
    while True:
        tmp = folder / temp_name(path.name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 64 random bits collided
            continue
    with _ACTIVE_LOCK:
        _ACTIVE.add(str(tmp))
    try:
        with os.fdopen(fd, "wb") as raw:
            if encoding is None:
                writer(raw)
            else:
                text = io.TextIOWrapper(raw, encoding=encoding, newline=newline)
                writer(text)
                text.flush()
                text.detach()  # leave ``raw`` open for the fsync below
            raw.flush()
            os.fsync(raw.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(str(tmp))
    fsync_dir(folder)


def write_bytes(path, data: bytes) -> None:
    """Atomically replace ``path`` by ``data``."""
    write_with(path, lambda f: f.write(data))


def write_text(path, text: str, *, encoding: str = "utf-8") -> None:
    """Atomically replace ``path`` by ``text`` (no newline translation)."""
    write_bytes(path, text.encode(encoding))
