"""The one writer and the one reader: every file jaxbp writes or reads goes through here.

Writing (:func:`write_file`):

- every file is written atomically (:func:`jaxbp.atomic.write_with`: a temporary file
  beside the target, ``fsync``, ``rename``), plots and predictions included;
- the target must be a regular file or absent: a directory, a device, a FIFO, a
  socket or a symbolic link is refused, naming the path (a write would replace the
  link or the node, not what it points to);
- a file of a run folder (listed in its manifest, or one of the run's fixed names in
  a folder holding ``config.json``) is refused unless the run itself writes it, and so
  is any path in ``protected`` (e.g. the command's input file);
- an existing file is refused unless ``overwrite`` (the same rule as ``train --out``);
- a failed write (disk full, file-size limit, permission) leaves the earlier file as
  it was and raises :class:`WriteError`: one line naming the path and the OS error.

Reading (:func:`read_bytes`, :func:`read_json`, :func:`check_npz`):

- regular files only (a FIFO is opened without blocking and refused, so it never hangs);
- sizes are checked *before* reading: the file's size against a limit, and for an
  ``.npz`` every member's declared size (and the size its ``.npy`` header implies)
  against a limit and against the memory available;
- nothing is ever unpickled.

Example:
    >>> import pathlib, tempfile
    >>> from jaxbp.runs import files
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.csv"
    >>> _ = files.write_file(path, "a,b\\n")
    >>> files.read_bytes(path)
    b'a,b\\n'
    >>> files.write_file(path, "c\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jaxbp.runs.files.UnsafeWriteError: ... already exists; pass --overwrite to replace it
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from jaxbp import atomic

JSON_LIMIT = 4 * 2**20
"""The largest JSON document read (``config.json``, a manifest, a checkpoint's metadata)."""
ARRAY_LIMIT = int(os.environ.get("JAXBP_MAX_ARRAY_BYTES", 2 * 2**30))
"""The largest array read from an ``.npz`` member (bytes, once inflated)."""
MANIFEST = "manifest.json"
RUN_FILES = (
    "config.json", "checkpoint.npz", "history.json", "history.csv", "sweep.json", MANIFEST,
    "loss.png", "accuracy.png", "confusion_matrix.png", "decision_regions.png", "fit.png",
)  # fmt: skip
"""Names a run folder's files may have (what ``--overwrite`` removes from a run made
before manifests existed)."""


class UnsafeWriteError(ValueError):
    """A write refused by the rules (a link, a device, a run's own file, an existing file)."""


class UnsafeReadError(ValueError):
    """A read refused by the rules (not a regular file, too large)."""


class WriteError(OSError):
    """A write that failed in the OS; the earlier file is untouched. One line."""

    def __str__(self) -> str:
        return self.args[0] if self.args else "write failed"


# ---------------------------------------------------------------------------
# Kinds of files


def kind(mode: int) -> str:
    """'a folder', 'a FIFO', … for a ``st_mode``."""
    for test, name in (
        (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
    ):  # fmt: skip
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def run_files(folder: Path) -> set[str] | None:
    """The names a run folder's manifest lists (plus the manifest), or None if no run."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            doc = read_json(manifest)
            names = doc.get("files", []) if isinstance(doc, dict) else []
            return {n for n in names if isinstance(n, str)} | {MANIFEST}
        except (OSError, ValueError):
            return set(RUN_FILES)
    if (folder / "config.json").is_file():
        return set(RUN_FILES)
    return None


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_target(path, *, overwrite: bool = False, protected: Iterable = (), own_run=None):
    """Refuse a target ``path`` the rules forbid (see the module doc); return it as a Path.

    ``own_run``: the run folder whose writer this is (its own files may be replaced).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise WriteError(f"cannot write {path}: {err.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnsafeWriteError(
            f"{path} is {kind(st.st_mode)}; jaxbp writes regular files only (choose a file name)"
        )
    for other in protected:
        if other is not None and _same(path, Path(other)):
            raise UnsafeWriteError(f"{path} is the command's input file; choose another output")
    folder = path.parent
    ours = own_run is not None and _same(folder, Path(own_run))
    if not ours:
        names = run_files(folder)
        if names is not None and path.name in names:
            raise UnsafeWriteError(
                f"{path} is a file of the run {folder}; write the output somewhere else"
            )
        if st is not None and not overwrite:
            raise UnsafeWriteError(f"{path} already exists; pass --overwrite to replace it")
    if not folder.is_dir():
        raise WriteError(f"cannot write {path}: the folder {folder} does not exist")
    return path


def write_file(
    path,
    data: bytes | str | Callable[[IO[Any]], object],
    *,
    overwrite: bool = False,
    protected: Iterable = (),
    own_run=None,
    encoding: str | None = None,
    newline: str | None = None,
) -> Path:
    """Write ``data`` to ``path`` by the rules of the module doc; return the path.

    Args:
        path: the target file; its folder must exist.
        data: bytes, text (written as UTF-8), or ``writer(fileobj)`` (binary, or text when
            ``encoding`` is given).
        overwrite: replace an existing regular file (never a run's file nor ``protected``).
        protected: paths that must not be written (e.g. the input file).
        own_run: the run folder that writes its own files (see :mod:`jaxbp.runs.folder`).
        encoding, newline: for a text ``writer``.

    Raises:
        UnsafeWriteError: (a ``ValueError``) a target the rules refuse.
        WriteError: (an ``OSError``) the OS refused; the earlier file is as it was.
    """
    path = check_target(path, overwrite=overwrite, protected=protected, own_run=own_run)
    if isinstance(data, str):
        data = data.encode("utf-8")
    writer = (lambda f: f.write(data)) if isinstance(data, bytes | bytearray) else data
    try:
        atomic.write_with(path, writer, encoding=encoding, newline=newline)
    except WriteError:
        raise
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise WriteError(f"cannot write {path}: {reason}") from None
    return path


def remove(path) -> None:
    """Remove a file the run wrote (never a folder, never through a link's target)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeWriteError(f"{path} is a folder; a run's files are regular files")
    path.unlink()


# ---------------------------------------------------------------------------
# Reading


def open_regular(path, what: str = "file") -> tuple[int, os.stat_result]:
    """An fd of ``path`` opened read-only, refused unless a regular file (never blocks)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UnsafeReadError(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise OSError(f"cannot read {what} {path}: {err.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeReadError(f"{what} {path} is {kind(st.st_mode)}, not a regular file")
    return fd, st


def check_regular(path, what: str = "file") -> Path:
    """Refuse ``path`` unless it is a regular file (following links); return it."""
    fd, _ = open_regular(path, what)
    os.close(fd)
    return Path(path)


def read_bytes(path, *, limit: int = JSON_LIMIT, what: str = "file") -> bytes:
    """The bytes of regular file ``path``, refused before reading if larger than ``limit``."""
    fd, st = open_regular(path, what)
    try:
        if st.st_size > limit:
            raise UnsafeReadError(
                f"{what} {path} holds {st.st_size} bytes, more than the {limit} read at most"
            )
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise UnsafeReadError(f"{what} {path} grew past {limit} bytes while read")
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_json(path, *, limit: int = JSON_LIMIT, what: str = "file"):
    """A JSON document of at most ``limit`` bytes; ValueError (one line) if it is not JSON."""
    raw = read_bytes(path, limit=limit, what=what)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{what} {path} is not valid UTF-8 JSON: {str(err)[:100]}") from None


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or a large number if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def member_limit(limit: int | None = None) -> int:
    """What one array may take: ``limit`` (:data:`ARRAY_LIMIT`) and half the free memory."""
    return min(ARRAY_LIMIT if limit is None else limit, available_memory() // 2)


def check_npz(path, *, limit: int | None = None, what: str = "file") -> Path:
    """Refuse an ``.npz`` whose arrays would not fit, before any is read or inflated.

    Each member's declared (inflated) size, and the size its ``.npy`` header implies
    (shape × itemsize), must be at most :func:`member_limit`; object arrays (pickle)
    are refused.
    """
    import numpy as np

    path = check_regular(path, what)
    cap = member_limit(limit)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename
                if info.file_size > cap:
                    raise UnsafeReadError(
                        f"{what} {path}: member {name!r} claims {info.file_size} bytes, more "
                        f"than the {cap} that may be read (limit or free memory)"
                    )
                if not name.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
                    shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise UnsafeReadError(
                        f"{what} {path}: member {name!r} holds object arrays (Python "
                        "objects), which need pickle; save numeric (or string) arrays"
                    )
                implied = math.prod(shape) * dtype.itemsize
                if implied > cap or implied > info.file_size:
                    raise UnsafeReadError(
                        f"{what} {path}: member {name!r} claims shape {shape} of {dtype} "
                        f"({implied} bytes), but holds {info.file_size} (limit {cap})"
                    )
    except UnsafeReadError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        text = " ".join(str(err).split())[:120]
        raise UnsafeReadError(f"{what} {path}: not a readable .npz file ({text})") from None
    return path
