"""Multi-process training on JAX's distributed runtime, run for real: 2 and 4 processes on
127.0.0.1 (gloo collectives on the CPU), each started as a subprocess with a timeout.

Every child runs in its own process group and is killed by that group in teardown, so no
test leaves a process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxbp import distributed

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_worker.py")
TIMEOUT = 90  # seconds any child may run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def spawn():
    """Start worker processes (own process group each); kill what is left at the end."""
    procs = []

    def start(*args, devices: int = 0, timeout_env: int = 30, command=(WORKER,)):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
               "JAXBP_DISTRIBUTED_TIMEOUT": str(timeout_env), "JAXBP_CACHE_DIR": "off"}  # fmt: skip
        env.pop("XLA_FLAGS", None)
        if devices:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        proc = subprocess.Popen(
            [sys.executable, *command, *map(str, args)], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)


def finish(proc, timeout=TIMEOUT) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def load(folder: Path, name: str = "params.npz") -> dict:
    with np.load(folder / name) as f:
        return dict(f)


# The 4-process run also checks memory, so its X is large (102 MB).
CASES = {4: ["--n", 200_000, "--d", 128, "--batch", 20_000, "--epochs", 2]}


def run_group(start) -> None:
    """``start(address)`` starts a group of processes; all must exit 0. Another program may
    take the free port between our look and process 0's bind: then once more, on another."""
    for attempt in range(2):
        done = [finish(p) for p in start(f"127.0.0.1:{free_port()}")]
        if attempt or not any("already in use" in err for _, err in done):
            break
    for i, (code, err) in enumerate(done):
        assert code == 0, f"process {i}: {err[-3000:]}"


def test_four_processes_match_one_process_on_four_devices(spawn, tmp_path):
    num = 4
    ref, multi = tmp_path / "ref", tmp_path / "multi"
    ref.mkdir(), multi.mkdir()
    run_group(lambda address: [
        *(spawn(address, num, i, multi, *CASES[num], "--warm") for i in range(num)),
        spawn("-", 0, 0, ref, *CASES[num], "--devices", num, devices=num),
    ])  # fmt: skip
    got, want, one = load(multi), load(ref), load(ref, "params-one-device.npz")
    assert set(got) == set(want) == set(one) == {"loss", "V", "W", "b", "c"}
    for name in want:  # the same minibatches; only the all-reduce's order of sums differs
        np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=2e-7, err_msg=name)
        np.testing.assert_allclose(got[name], one[name], rtol=2e-6, atol=2e-7, err_msg=name)
    assert not np.allclose(want["V"], np.zeros_like(want["V"]))
    for i in range(num):  # each process holds its quarter of X, never the whole
        mem = json.loads((multi / f"memory-{i}.json").read_text())
        assert mem["rows"] == 200_000 // num
        rise = mem["after"] - mem["before"]
        assert rise < 0.75 * mem["X_bytes"], (i, rise / 2**20, mem["X_bytes"] / 2**20)


def cli(spawn, *args, devices: int = 0):
    """``jaxbp train`` in a child process (the spawn fixture's group and timeout)."""
    return spawn(*args, devices=devices, command=["-m", "jaxbp.cli", "train", "--quiet"])


def test_cli_two_processes_match_one_process_on_two_devices(spawn, tmp_path):
    """``jaxbp train --coordinator ... --num-processes 2 --process-id I``: process 0 writes
    the run folder, process 1 writes nothing, and θ is the one-process run's."""
    common = ["--epochs", 2, "--batch-size", 64, "--hidden", 16]
    run_group(lambda address: [
        *(cli(spawn, *common, "--coordinator", address, "--num-processes", 2, "--process-id",
              i, "--out", tmp_path / f"multi{i}", "--overwrite") for i in range(2)),
        cli(spawn, *common, "--devices", 2, "--out", tmp_path / "ref", "--overwrite",
            devices=2),
    ])  # fmt: skip
    assert not (tmp_path / "multi1").exists()  # only process 0 writes
    with np.load(tmp_path / "multi0" / "checkpoint.npz") as got:
        with np.load(tmp_path / "ref" / "checkpoint.npz") as want:
            names = [k for k in want.files if k.startswith("params.")]
            assert names == ["params.V", "params.W", "params.b", "params.c"]
            for name in want.files:
                if want[name].dtype.kind == "f":
                    np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=2e-7,
                                               err_msg=name)  # fmt: skip
    history = json.loads((tmp_path / "multi0" / "history.json").read_text())
    assert len(history["epoch"]) == 2 and history["val_loss"][-1] is not None


def test_a_killed_process_stops_the_others_with_one_line(spawn, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    procs = [spawn(address, 2, i, tmp_path, "--stall", "--n", 4000) for i in range(2)]
    deadline = time.monotonic() + TIMEOUT
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in procs), [finish(p)[1][-2000:] for p in procs]
        assert time.monotonic() < deadline, "the workers never finished an epoch"
        time.sleep(0.1)
    os.killpg(procs[1].pid, signal.SIGKILL)
    t = time.monotonic()
    code, err = finish(procs[0], timeout=40)
    assert time.monotonic() - t < 30
    assert code == distributed.EXIT_LOST, err[-3000:]
    lines = error_lines(err)
    assert len(lines) == 1, err[-3000:]
    assert "lost process 1 of 2" in lines[0], lines
    assert "Traceback" not in err and "Check failure" not in err, err[-3000:]


def test_unreachable_coordinator_is_one_line(spawn, tmp_path):
    proc = spawn(f"127.0.0.1:{free_port()}", 2, 1, tmp_path, timeout_env=2)
    code, err = finish(proc, timeout=30)
    assert code == 2, err[-2000:]
    assert error_lines(err) == [s for s in err.splitlines() if s.strip()], err[-2000:]
    assert "cannot reach the coordinator 127.0.0.1:" in err


def test_port_in_use_is_one_line(spawn, tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = finish(spawn(f"127.0.0.1:{port}", 2, 0, tmp_path), timeout=30)
    assert code == 2, err[-2000:]
    assert [s for s in err.splitlines() if s.strip()] == error_lines(err)
    assert f"port {port} is already in use" in err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("nohost", 2, 0), "HOST:PORT"),
        (("127.0.0.1:99999", 2, 0), "HOST:PORT"),
        (("127.0.0.1:1234", 2, 2), "--process-id must be in"),
        (("127.0.0.1:1234", 0, 0), "--num-processes must be >= 1"),
        (("127.0.0.1:1234", None, 0), "together"),
        (("no-such-host.invalid:1234", 2, 0), "does not resolve"),
        (("192.0.2.1:1234", 2, 0), "not an address of this machine"),
        ((None, 2, None), "no cluster environment"),
    ],
)
def test_bad_settings_are_refused_before_jax_starts(args, match, monkeypatch):
    for name in [*distributed.ENV, "SLURM_JOB_ID", "SLURM_NTASKS", "KUBERNETES_SERVICE_HOST",
                 "OMPI_MCA_orte_hnp_uri", "PMI_RANK"]:  # fmt: skip
        monkeypatch.delenv(name, raising=False)  # no cluster for JAX to find
    with pytest.raises(distributed.DistributedError, match=match):
        distributed.initialize(*args, timeout=1)


def test_settings_read_jax_environment_variables():
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert distributed.settings(env=env) == ("h:1", 4, 3)
    assert distributed.settings("g:2", 2, 0, env=env) == ("g:2", 2, 0)
    with pytest.raises(distributed.DistributedError, match="JAX_NUM_PROCESSES"):
        distributed.settings(env={"JAX_NUM_PROCESSES": "four"})


@pytest.mark.parametrize(
    ("n", "processes", "local"), [(10, 2, 1), (10, 4, 1), (7, 3, 2), (3, 4, 1)]
)
def test_shards_cover_every_row_once(n, processes, local):
    parts = [distributed.shard_rows(n, process=i, processes=processes, local_devices=local)
             for i in range(processes)]  # fmt: skip
    covered = [r for part in parts for r in range(n)[part]]
    assert covered == list(range(n))
    r = distributed.rows_per_device(n, processes * local)
    assert all(len(range(n)[p]) <= local * r for p in parts)


def test_the_same_rows_on_every_process_are_refused(monkeypatch):
    """The whole X passed to each process would train on it N times over: refused."""
    import jax
    from jax.experimental import multihost_utils

    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    monkeypatch.setattr(jax, "process_count", lambda: 2)

    def gathered(*shards):
        rows = [np.asarray([len(s), distributed.fingerprint(s)], np.int64) for s in shards]
        monkeypatch.setattr(multihost_utils, "process_allgather", lambda a: np.stack(rows))

    gathered(X, X)
    with pytest.raises(ValueError, match="same rows"):
        distributed.global_count(len(X), X)
    gathered(X[:10], X[10:])  # each its own half: fine
    assert distributed.global_count(10, X[:10]) == 20
    gathered(X[:10], X[:10] + 0)  # equal halves that hold equal values are refused too
    with pytest.raises(ValueError, match="same rows"):
        distributed.global_count(10, X[:10])
    gathered(X[:12], X[12:])  # not the shard_rows layout
    with pytest.raises(ValueError, match="shard_rows"):
        distributed.global_count(12, X[:12])
