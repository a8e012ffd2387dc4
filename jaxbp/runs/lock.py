"""One writer per run folder: an exclusive OS lock (``fcntl.flock``) held for the whole run.

``train``, ``train --resume`` and ``train --overwrite`` hold :func:`writer_lock` on the
run folder from before they look at its files until they exit. The kernel releases the
lock when the process ends, however it ends (``kill -9`` included), so a stale lock
never blocks. The holder writes who it is (pid, host, start time) to
:data:`HOLDER` inside the folder, so that a second writer can say whom it waits for;
that file is removed when the lock is released. Readers (``evaluate``, ``predict``)
never lock: every file is replaced atomically, so they read the last committed state.

``flock`` is advisory (a process that does not ask is not stopped) and, on some
network file systems (older NFS, some SMB mounts), is not shared between machines or
fails: then the run goes on unlocked after one warning line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

HOLDER = ".jaxbp-writer.json"
"""The file naming the lock's holder: ``{"pid", "host", "started"}``."""


class RunLockedError(ValueError):
    """Another process holds the run folder's writer lock (one line naming it)."""


def holder(folder) -> str:
    """'pid 42 on host h since 2026-12-01 10:00:00 UTC', or 'another process'."""
    try:
        from jaxbp.runs.files import read_json

        doc = read_json(Path(folder) / HOLDER)
        return f"pid {doc['pid']} on host {doc['host']} since {doc['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def writer_lock(folder, *, what: str = "jaxbp train"):
    """Hold the exclusive writer lock of the existing folder ``folder``.

    Raises:
        RunLockedError: another process holds it (the message names pid, host, start).
    """
    import fcntl

    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise RunLockedError(
                f"{folder} is being written by another jaxbp process ({holder(folder)}); "
                "wait for it to end, or choose another folder"
            ) from None
        except OSError as err:  # e.g. ENOLCK on a network file system
            print(
                f"{what}: warning: cannot lock {folder} ({err.strerror}); make sure no other "
                "process writes this run",
                file=sys.stderr,
            )
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        if locked:
            from jaxbp import atomic

            with contextlib.suppress(OSError):
                atomic.write_text(folder / HOLDER, json.dumps(info))
        try:
            yield
        finally:
            if locked:
                with contextlib.suppress(OSError):
                    (folder / HOLDER).unlink()
    finally:
        os.close(fd)  # releases the lock
