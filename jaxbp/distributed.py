"""Several JAX processes training one model: JAX's distributed runtime, started safely.

Data parallelism across processes is JAX's own: every process runs the same program,
each holds only its shard of the training rows, and XLA's collectives (gloo on a CPU,
NCCL on GPUs, ICI on TPUs) all-reduce the gradient. This module only starts the runtime
and lays the rows out:

- :func:`initialize` wraps ``jax.distributed.initialize``: flags, or JAX's environment
  variables (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), or
  Slurm's, which JAX detects itself. It checks the coordinator address and port first,
  so that a wrong address or a port in use is one line (:class:`DistributedError`), not
  a native crash, and it switches the CPU collectives to gloo.
- :func:`shard_rows` says which rows of the n training rows this process loads.
- :func:`watch_peers` turns a lost process into one line naming it, and ends the
  process at once instead of waiting in JAX's shutdown barrier.

Minibatches are defined on the *global* row index: epoch k's order is
``shuffle_order(key, k, n)`` as in a single process, every device contributes the
rows of each minibatch that it holds, and a reduce-scatter leaves each device its
slice (``jaxbp.epoch``). θ is therefore a deterministic function of (data, seed): the
same as ``fit`` on one device, up to float32 rounding of the gradient's all-reduce,
for any number of processes.

``import jaxbp`` does not import this module; ``fit(devices=...)`` does.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
import time

__all__ = [
    "DistributedError",
    "LostProcess",
    "initialize",
    "is_multiprocess",
    "process_count",
    "process_index",
    "rows_per_device",
    "shard_rows",
]

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
TIMEOUT_ENV = "JAXBP_DISTRIBUTED_TIMEOUT"  # seconds to wait for the coordinator and peers
DEFAULT_TIMEOUT = 60
EXIT_LOST = 3  # the exit code of a process whose peer was lost


class DistributedError(ConnectionError):
    """The distributed runtime could not start or lost a process (one line, for the user)."""


class LostProcess(DistributedError):
    """A peer process died during training; ``.process`` is its index, or None if unknown."""

    def __init__(self, message: str, process: int | None = None):
        super().__init__(message)
        self.process = process


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_multiprocess() -> bool:
    """True when JAX runs as several processes (``jax.distributed.initialize`` was called)."""
    return "jax" in sys.modules and process_count() > 1


def rows_per_device(n: int, devices: int) -> int:
    """Rows each device holds: ⌈n / devices⌉ (the last devices are padded, never read)."""
    return -(-n // devices)


def shard_rows(n: int, *, process: int | None = None, processes: int | None = None,
               local_devices: int | None = None) -> slice:  # fmt: skip
    """The rows of the n training rows that a process loads: one contiguous slice.

    Device j of the mesh (devices in process order) holds the global rows
    ``[j·r, (j+1)·r)`` with r = ⌈n / devices⌉, so process i holds
    ``[i·L·r, (i+1)·L·r) ∩ [0, n)`` with L devices per process. Defaults: this process.

    Example:
        >>> from jaxbp.distributed import shard_rows
        >>> shard_rows(10, process=1, processes=2, local_devices=1)
        slice(5, 10, None)
    """
    if process is None or processes is None or local_devices is None:
        import jax

        process = jax.process_index() if process is None else process
        processes = jax.process_count() if processes is None else processes
        local_devices = jax.local_device_count() if local_devices is None else local_devices
    per_process = local_devices * rows_per_device(n, processes * local_devices)
    return slice(min(n, process * per_process), min(n, (process + 1) * per_process))


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = str(address).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(
            f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:1234), got {address!r}"
        )
    return host, int(port)


def _int_setting(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DistributedError(f"{name} must be an integer, got {value!r}") from None


def settings(coordinator=None, num_processes=None, process_id=None, env=None):
    """(coordinator, num_processes, process_id) from the arguments, else JAX's variables."""
    env = os.environ if env is None else env
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = _int_setting(
        num_processes if num_processes is not None else env.get("JAX_NUM_PROCESSES"),
        "--num-processes (JAX_NUM_PROCESSES)",
    )
    process_id = _int_setting(
        process_id if process_id is not None else env.get("JAX_PROCESS_ID"),
        "--process-id (JAX_PROCESS_ID)",
    )
    return coordinator, num_processes, process_id


def _check_coordinator_port(host: str, port: int) -> None:
    """Process 0 runs the coordinator: its host must be this machine's, its port free."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise DistributedError(f"coordinator host {host!r} does not resolve ({err})") from None
    family, *_, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((sockaddr[0], 0))
        except OSError:
            raise DistributedError(
                f"coordinator {host}:{port}: {host} is not an address of this machine, but "
                "process 0 runs the coordinator (start process 0 on that host)"
            ) from None
    for fam, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(fam, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((addr, port))
            except OSError as err:
                if err.errno in (98, 48, 10048):  # EADDRINUSE (Linux, macOS, Windows)
                    raise DistributedError(
                        f"coordinator port {port} is already in use on this host "
                        "(another job, or a process of an earlier run): pick a free port"
                    ) from None
                continue  # e.g. no IPv6 on this host
            return


def _wait_for_coordinator(host: str, port: int, timeout: float) -> None:
    """Processes other than 0 wait until the coordinator accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except socket.gaierror as err:
            raise DistributedError(f"coordinator host {host!r} does not resolve ({err})") from None
        except OSError as err:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"cannot reach the coordinator {host}:{port} within {timeout:g} s "
                    f"({err.strerror or err}): is process 0 started with the same --coordinator?"
                ) from None
            time.sleep(0.1)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout: float | None = None) -> bool:  # fmt: skip
    """Start JAX's distributed runtime for this process; True if it runs as several.

    Args:
        coordinator: ``HOST:PORT`` of process 0's coordinator (else ``JAX_COORDINATOR_ADDRESS``).
        num_processes: N (else ``JAX_NUM_PROCESSES``).
        process_id: this process's index in [0, N) (else ``JAX_PROCESS_ID``).
        timeout: seconds to wait for the coordinator and the other processes (else
            ``$JAXBP_DISTRIBUTED_TIMEOUT``, else 60).

    Without ``coordinator``, JAX takes what is missing from the cluster's environment
    (Slurm's variables, a Cloud TPU pod slice's metadata, Kubernetes, MPI); under Slurm
    with nothing given at all, it finds everything itself. With nothing given and no
    Slurm, nothing is started and False is returned. Must run before any computation.

    Raises:
        DistributedError: a bad address, a port in use, a coordinator that cannot be
            reached, or inconsistent N and id; one line, naming the flag.
    """
    coordinator, num_processes, process_id = settings(coordinator, num_processes, process_id)
    slurm = "SLURM_JOB_ID" in os.environ and "SLURM_NTASKS" in os.environ
    if coordinator is None and num_processes is None and process_id is None and not slurm:
        return False
    if timeout is None:
        timeout = float(_int_setting(os.environ.get(TIMEOUT_ENV), TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    import jax

    if _already_initialized():
        raise DistributedError("the distributed runtime is already initialized in this process")
    if num_processes is not None and num_processes < 1:
        raise DistributedError(f"--num-processes must be >= 1, got {num_processes}")
    if num_processes is not None and process_id is not None:
        if not 0 <= process_id < num_processes:
            raise DistributedError(
                f"--process-id must be in [0, {num_processes}) for --num-processes "
                f"{num_processes}, got {process_id}"
            )
    if coordinator is not None:
        if num_processes is None or process_id is None:
            raise DistributedError(
                "multi-process training needs --coordinator HOST:PORT, --num-processes N and "
                "--process-id I together (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
                "JAX_PROCESS_ID); leave out --coordinator where the cluster (Slurm, Cloud TPU) "
                "tells JAX"
            )
        host, port = _parse_address(coordinator)
        if process_id == 0:
            _check_coordinator_port(host, port)
        else:
            _wait_for_coordinator(host, port, timeout)
    # Without --coordinator, JAX finds what is missing in the cluster's environment (Slurm,
    # Cloud TPU, Kubernetes, MPI). CPU devices talk through gloo (set before any
    # computation); GPUs and TPUs keep their own collectives.
    before = jax.config.jax_cpu_collectives_implementation
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes,
            process_id=process_id, initialization_timeout=max(1, int(timeout)),
            heartbeat_timeout_seconds=max(5, int(timeout)),
        )  # fmt: skip
    except (ValueError, TypeError, RuntimeError) as err:
        jax.config.update("jax_cpu_collectives_implementation", before)
        if coordinator is not None:
            raise
        raise DistributedError(
            "no cluster environment (Slurm, Cloud TPU, Kubernetes, MPI) gave JAX the "
            f"coordinator ({' '.join(str(err).split())}); give --coordinator HOST:PORT, "
            "--num-processes N and --process-id I"
        ) from None
    _publish_pid()
    atexit.register(_exit_if_lost)  # runs before JAX's own shutdown (atexit is LIFO)
    return jax.process_count() > 1


def _already_initialized() -> bool:
    from jax._src import distributed

    return distributed.global_state.client is not None


# -- a lost process: one line naming it, and no wait in JAX's shutdown barrier ------------

_PEERS: dict[int, tuple[str, int]] = {}  # process index -> (host, pid)
_LOST: list[int] = []  # the exit code, once a peer is lost


def _publish_pid() -> None:
    """Every process learns every other's (host, pid), to name a lost one later."""
    import jax
    from jax._src import distributed

    client = distributed.global_state.client
    me = jax.process_index()
    client.key_value_set(f"jaxbp/pid/{me}", f"{socket.gethostname()} {os.getpid()}")
    for i in range(jax.process_count()):
        host, pid = client.blocking_key_value_get(f"jaxbp/pid/{i}", 60_000).split()
        _PEERS[i] = (host, int(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def lost_processes() -> list[int]:
    """Indices of peer processes on this host that are no longer running."""
    here = socket.gethostname()
    return [i for i, (host, pid) in _PEERS.items() if host == here and not _alive(pid)]


def as_lost_process(err: BaseException) -> LostProcess | None:
    """The error a failed collective means (a peer died), or None if it is another error."""
    text = str(err)
    if not _PEERS or not any(s in text for s in ("Gloo", "gloo", "Connection closed", "peer")):
        return None
    time.sleep(0.2)  # the dead process may still be exiting
    lost = lost_processes()
    first = text.strip().splitlines()[0][:160] if text.strip() else type(err).__name__
    if lost:
        host, pid = _PEERS[lost[0]]
        names = ", ".join(str(i) for i in lost)
        msg = (f"lost process {names} of {len(_PEERS)} (pid {pid} on {host} is gone); "
               "the other processes stop too")  # fmt: skip
        return LostProcess(msg, lost[0])
    return LostProcess(f"lost a peer process ({first}); the other processes stop too")


def mark_lost(code: int = EXIT_LOST) -> None:
    """After a lost peer, end this process at exit without JAX's shutdown barrier."""
    _LOST.append(code)


def _exit_if_lost() -> None:
    if _LOST:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(_LOST[0])


# -- the data layout that fit(devices=...) uses --------------------------------------------


def fingerprint(X) -> int:
    """A 63-bit hash of about 1024 rows of X spread over it (to tell shards apart)."""
    import hashlib

    import numpy as np

    a = np.asarray(X)
    sample = np.ascontiguousarray(a[:: max(1, len(a) // 1024)])
    return int.from_bytes(hashlib.blake2b(sample.tobytes(), digest_size=8).digest()) >> 1


def global_count(local_rows: int, X=None) -> int:
    """The number of training rows over all processes (this process holds ``local_rows``).

    With ``X`` (this process's rows), a ValueError if every process holds the same rows:
    the whole data passed to every process would silently train on it N times over."""
    import jax
    import numpy as np

    if jax.process_count() == 1:
        return int(local_rows)
    from jax.experimental import multihost_utils

    mine = [local_rows, 0 if X is None else fingerprint(X)]
    got = np.asarray(multihost_utils.process_allgather(np.asarray(mine, np.int64)))
    counts, prints = got.reshape(-1, 2)[:, 0].tolist(), got.reshape(-1, 2)[:, 1].tolist()
    if X is not None and local_rows > 0 and len(set(prints)) == 1:
        raise ValueError(
            f"X: all {len(prints)} processes passed the same rows; each process passes only "
            "its own shard, X[jaxbp.distributed.shard_rows(n)] (see docs/scale.md)"
        )
    n = int(sum(counts))
    want = [len(range(n)[shard_rows(n, process=i)]) for i in range(len(counts))]
    if counts != want:
        raise ValueError(
            f"each process must pass its own shard of the training rows, "
            f"jaxbp.distributed.shard_rows(n) with n={n}: the processes hold {counts} rows, "
            f"the layout wants {want}"
        )
    return n


def place_rows(sharding, n: int, *arrays):
    """This process's rows of each array, padded to its devices' shards, as global arrays
    sharded by rows over ``sharding`` (with one process, the arrays hold all n rows)."""
    import jax
    import numpy as np

    size = sharding.mesh.shape[sharding.spec[0]]
    r = rows_per_device(n, size)
    mine = shard_rows(n) if jax.process_count() > 1 else slice(0, n)
    local = len(range(n)[mine])
    out = []
    for a in arrays:
        a = np.asarray(a) if jax.process_count() == 1 else np.asarray(a)[:local]
        if jax.process_count() == 1:
            a = a[mine]
        want = (size * r) // jax.process_count() if jax.process_count() > 1 else size * r
        if a.shape[0] < want:  # the padded rows are never picked (see jaxbp.epoch)
            a = np.concatenate([a, np.zeros((want - a.shape[0], *a.shape[1:]), a.dtype)])
        out.append(jax.make_array_from_process_local_data(sharding, a, (size * r, *a.shape[1:])))
    return out


def replicate(tree, sharding):
    """Every leaf of ``tree`` (identical on all processes) as a global array copied to every
    device of ``sharding``'s mesh."""
    import jax
    import numpy as np

    everywhere = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, everywhere)
    return jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(everywhere, np.asarray(a)), tree
    )
