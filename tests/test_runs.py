"""The run folder as one unit (jaxbp.runs): the one writer, the one reader, the lock, the
manifest, and write_run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import jax
import numpy as np
import pytest

import jaxbp
from jaxbp import atomic, checkpoint
from jaxbp.runs import (
    RunLockedError,
    UnsafeReadError,
    UnsafeWriteError,
    WriteError,
    files,
    folder,
    lock,
    read_bytes,
    write_file,
    write_run,
)

# --------------------------------------------------------------------------- the writer


def test_write_file_writes_atomically_with_the_users_umask(tmp_path):
    path = tmp_path / "out.csv"
    umask = os.umask(0o027)
    try:
        write_file(path, "a\n")
    finally:
        os.umask(umask)
    assert path.read_text() == "a\n" and path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_an_existing_file_needs_overwrite(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("mine")
    with pytest.raises(UnsafeWriteError, match="already exists; pass --overwrite"):
        write_file(path, "new")
    assert path.read_text() == "mine"
    write_file(path, "new", overwrite=True)
    assert path.read_text() == "new"


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo", "device"])
def test_links_folders_fifos_and_devices_are_refused_even_with_overwrite(tmp_path, kind):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    path = tmp_path / "out"
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path = tmp_path / "null"
        path.symlink_to("/dev/null")  # a device reached through a link: still refused
    with pytest.raises(UnsafeWriteError, match=str(path)):
        write_file(path, "x", overwrite=True)
    assert target.read_text() == "keep"
    if kind == "device":
        with pytest.raises(UnsafeWriteError, match="a device"):
            write_file("/dev/null", "x", overwrite=True)


def test_atomic_write_refuses_to_replace_a_symlink(tmp_path):
    target = tmp_path / "real"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError, match="not a regular file"):
        atomic.write_text(tmp_path / "link", "x")
    assert (tmp_path / "link").is_symlink() and target.read_text() == "keep"


def test_a_runs_own_files_and_the_input_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "checkpoint.npz").write_bytes(b"ckpt")
    for name in ("config.json", "checkpoint.npz", "loss.png"):
        with pytest.raises(UnsafeWriteError, match="a file of the run"):
            write_file(run / name, "x", overwrite=True)
    assert (run / "checkpoint.npz").read_bytes() == b"ckpt"
    write_file(run / "notes.csv", "ok")  # another name in the folder is the user's
    (run / "manifest.json").write_text(json.dumps({"files": ["custom.bin"]}))
    with pytest.raises(UnsafeWriteError, match="a file of the run"):
        write_file(run / "custom.bin", "x", overwrite=True)
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n")
    with pytest.raises(UnsafeWriteError, match="input file"):
        write_file(tmp_path / "." / "in.csv", "y", overwrite=True, protected=[data])
    assert data.read_text() == "x\n1\n"


def test_a_failed_write_keeps_the_old_file_and_says_one_line(tmp_path, monkeypatch):
    path = tmp_path / "loss.png"
    path.write_bytes(b"good")

    def too_large(*args):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "replace", too_large)
    with pytest.raises(WriteError) as info:
        write_file(path, b"new", overwrite=True)
    monkeypatch.undo()
    assert str(info.value) == f"cannot write {path}: File too large"
    assert path.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_a_real_file_size_limit_is_one_line_and_leaves_the_old_file(tmp_path):
    """RLIMIT_FSIZE in a child: the write fails with EFBIG, the earlier file stays whole."""
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "from jaxbp.runs import write_file\n"
        "try:\n"
        f"    write_file({str(path)!r}, b'x' * 5000, overwrite=True)\n"
        "except OSError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"cannot write {path}: File too large", out.stderr
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


# --------------------------------------------------------------------------- the reader


def test_the_reader_refuses_fifos_devices_and_folders_without_blocking(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(UnsafeReadError, match="a FIFO"):
        read_bytes(fifo)
    assert time.monotonic() - start < 5
    with pytest.raises(UnsafeReadError, match="a device"):
        read_bytes("/dev/zero")
    with pytest.raises(UnsafeReadError, match="folder"):
        read_bytes(tmp_path)


def test_the_reader_checks_the_size_before_reading(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2000)
    with pytest.raises(UnsafeReadError, match="2000 bytes"):
        read_bytes(path, limit=1000)
    assert read_bytes(path, limit=2000) == b" " * 2000


def _npz_claiming(path, shape, data=b""):
    """An .npz whose member X has a header claiming ``shape`` of float64 but ``data`` bytes."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", buffer.getvalue() + data)
        archive.writestr("y.npy", buffer.getvalue())
    return path


def test_an_npz_claiming_huge_arrays_is_refused_before_inflating(tmp_path):
    path = _npz_claiming(tmp_path / "bomb.npz", (600_000_000,))  # 4.8 GB claimed
    with pytest.raises(UnsafeReadError, match="claims shape"):
        files.check_npz(path)
    from jaxbp import data

    with pytest.raises(data.DataError, match="claims shape"):
        data.load(str(path))
    with pytest.raises(data.DataError, match="claims shape"):
        data.read_features(path)


def test_an_npz_member_over_the_limit_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, X=np.zeros((100, 10)), y=np.zeros(100))
    with pytest.raises(UnsafeReadError, match=r"8000|claims"):
        files.check_npz(path, limit=1000)
    files.check_npz(path)
    assert files.member_limit() <= files.available_memory() // 2 + 1


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([object()], dtype=object), y=np.zeros(1))
    with pytest.raises(UnsafeReadError, match="pickle"):
        files.check_npz(path)


# --------------------------------------------------------------------------- the lock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with lock.writer_lock(tmp_path):
        info = json.loads((tmp_path / lock.HOLDER).read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on host .* since"):
            with lock.writer_lock(tmp_path):
                pass
    assert not (tmp_path / lock.HOLDER).exists()
    with lock.writer_lock(tmp_path):  # released: the next writer gets it
        pass


def test_the_kernel_releases_the_lock_of_a_killed_writer(tmp_path):
    code = (
        "import sys, time\n"
        "from jaxbp.runs import writer_lock\n"
        f"with writer_lock({str(tmp_path)!r}):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            with lock.writer_lock(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with lock.writer_lock(tmp_path):  # a stale lock never blocks
        pass


# --------------------------------------------------------------------------- the folder


def test_overwrite_removes_only_the_runs_own_files(tmp_path):
    (tmp_path / "mine.png").write_bytes(b"user")
    with pytest.raises(UnsafeWriteError, match="not a jaxbp run"):
        folder.prepare(tmp_path, overwrite=True)
    assert (tmp_path / "mine.png").exists()
    run = folder.RunFolder(tmp_path, "abc")
    run.write("config.json", "{}")
    run.write("loss.png", b"png")
    with pytest.raises(UnsafeWriteError, match="--resume"):
        folder.prepare(tmp_path, overwrite=False)
    folder.prepare(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png"]


def test_abandon_leaves_nothing_of_a_run_it_created(tmp_path):
    out = tmp_path / "new"
    assert folder.make(out)
    with lock.writer_lock(out):
        run = folder.RunFolder(out, "abc", created=True)
        run.write("config.json", "{}")
        run.abandon()
    assert not out.exists()


def test_run_ids_are_random_and_fingerprints_follow_the_bytes(tmp_path):
    assert folder.new_run_id() != folder.new_run_id()
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    before = folder.fingerprint(str(data))
    assert before.startswith("sha256:") and before == folder.fingerprint(str(data))
    data.write_text("a,b\n1,3\n")
    assert folder.fingerprint(str(data)) != before
    assert folder.fingerprint("blobs", seed=3) == "blobs:v1:seed=3"


def _net_params():
    net = jaxbp.Net(activation="tanh", head="squared")
    return net, jaxbp.init(net, jax.random.key(0), d=1, hidden=3, out=1)


def test_write_run_writes_a_run_with_one_identity(tmp_path):
    net, params = _net_params()
    out = write_run(tmp_path / "r", {"data": "sine"}, net=net, params=params,
                    extra={"notes.txt": "hi"})  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    ckpt = checkpoint.load(out / "checkpoint.npz")
    assert config["run_id"] == ckpt.config["run_id"] and len(config["run_id"]) == 16
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == config["run_id"]
    assert sorted(manifest["files"]) == ["checkpoint.npz", "config.json", "notes.txt"]
    with pytest.raises(UnsafeWriteError, match="jaxbp run"):
        write_run(out, {"data": "sine"}, net=net, params=params)
    write_run(out, {"data": "sine"}, net=net, params=params, overwrite=True)
    assert "notes.txt" not in {p.name for p in out.iterdir()}


def test_a_first_checkpoint_that_cannot_be_written_leaves_nothing(tmp_path, monkeypatch):
    net, params = _net_params()

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(WriteError, match=r"cannot write .*: No space left on device"):
        write_run(tmp_path / "r", {"data": "sine"}, net=net, params=params)
    monkeypatch.undo()
    assert not (tmp_path / "r").exists()
