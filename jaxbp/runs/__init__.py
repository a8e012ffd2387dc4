"""The run folder as one unit: schema identity, lock, the one writer and the one reader.

- :mod:`jaxbp.runs.files`: :func:`write_file` (every file jaxbp writes) and
  :func:`read_bytes` / :func:`read_json` / :func:`check_npz` (every file it reads);
- :mod:`jaxbp.runs.lock`: :func:`writer_lock`, one writer per run folder;
- :mod:`jaxbp.runs.folder`: run id, data fingerprint, manifest, :class:`RunFolder`
  and :func:`write_run`.

See ``docs/runs.md``.
"""

from jaxbp.runs.files import (
    UnsafeReadError,
    UnsafeWriteError,
    WriteError,
    check_npz,
    read_bytes,
    read_json,
    write_file,
)
from jaxbp.runs.folder import RunFolder, fingerprint, new_run_id, write_run
from jaxbp.runs.lock import RunLockedError, writer_lock

__all__ = [
    "RunFolder",
    "RunLockedError",
    "UnsafeReadError",
    "UnsafeWriteError",
    "WriteError",
    "check_npz",
    "fingerprint",
    "new_run_id",
    "read_bytes",
    "read_json",
    "write_file",
    "write_run",
    "writer_lock",
]
