"""Atomic writes: all or nothing, permissions kept, stale temporary files removed."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest

from jaxbp import atomic

TEMP_RE = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<token>[0-9a-f]{16})\.tmp")


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes_text_and_with(tmp_path):
    path = tmp_path / "a.bin"
    atomic.write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic.write_text(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    rows = [["epoch", "loss"], [1, 0.5]]
    atomic.write_with(path, lambda f: csv.writer(f).writerows(rows), encoding="utf-8", newline="")
    assert path.read_bytes() == b"epoch,loss\r\n1,0.5\r\n"
    atomic.write_with(path, lambda f: f.write(b"raw"))
    assert path.read_bytes() == b"raw"
    assert _names(tmp_path) == ["a.bin"]


def test_temp_names_follow_the_documented_pattern():
    name = atomic.temp_name("checkpoint.npz", pid=4242)
    match = TEMP_RE.fullmatch(name)
    assert match and match["name"] == "checkpoint.npz" and match["pid"] == "4242"
    assert (
        atomic.TEMP_PATTERN.format(name="x", pid=1, token="0" * 16) == ".x.1.0000000000000000.tmp"
    )
    assert atomic.temp_name("x") != atomic.temp_name("x")  # fresh tokens
    assert f".{os.getpid()}." in atomic.temp_name("x")


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_failed_writer_keeps_old_file_and_leaves_no_temp(tmp_path, error):
    path = tmp_path / "config.json"
    path.write_text("old")
    seen = []

    def writer(f):
        f.write(b"half")
        seen.extend(p.name for p in tmp_path.iterdir())  # the temp exists meanwhile
        raise error("boom")

    with pytest.raises(error, match="boom"):
        atomic.write_with(path, writer)
    assert any(TEMP_RE.fullmatch(name) for name in seen)
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["config.json"]


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "h.csv"
    path.write_text("old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old" and _names(tmp_path) == ["h.csv"]


def test_permissions(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("x")
    path.chmod(0o640)
    atomic.write_text(path, "y")
    assert path.stat().st_mode & 0o7777 == 0o640
    umask = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "new.txt", "z")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640  # 0o666 less the umask


def test_remove_stale_temps_touches_only_dead_writers_of_that_target(tmp_path):
    dead = _dead_pid()
    target = tmp_path / "run.npz"
    stale = [
        atomic.temp_name("run.npz", pid=dead),
        atomic.temp_name("run.npz", pid=os.getpid()),  # ours, but not being written now
    ]
    kept = [
        "run.npz",
        "run.npz.bak",
        ".run.npz.tmp",
        ".run.npz.123.tmp",
        ".run.npz.123.notatoken.tmp",
        atomic.temp_name("run.npz", pid=1),  # a live writer (init always exists)
        atomic.temp_name("other.npz", pid=dead),
        atomic.temp_name("run.npz.bak", pid=dead),
        atomic.temp_name("run.np", pid=dead),
        "notes.txt",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(p.name for p in atomic.remove_stale_temps(target)) == sorted(stale)
    assert _names(tmp_path) == sorted(kept)
    assert atomic.remove_stale_temps(target) == []
    assert atomic.remove_stale_temps(tmp_path / "missing" / "x") == []


def test_write_removes_stale_temps_first(tmp_path):
    stale = tmp_path / atomic.temp_name("history.json", pid=_dead_pid())
    stale.write_bytes(b"partial")
    atomic.write_text(tmp_path / "history.json", "{}")
    assert _names(tmp_path) == ["history.json"]


def test_a_temp_being_written_is_not_stale(tmp_path):
    """A concurrent write of the same target in this process keeps its temp file."""
    path = tmp_path / "c.txt"
    inner = []

    def writer(f):
        atomic.remove_stale_temps(path)  # e.g. another thread loading meanwhile
        inner.extend(p.name for p in tmp_path.iterdir())
        f.write(b"new")

    atomic.write_with(path, writer)
    assert len(inner) == 1 and TEMP_RE.fullmatch(inner[0])
    assert path.read_bytes() == b"new"
