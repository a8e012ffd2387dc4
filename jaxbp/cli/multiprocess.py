"""``jaxbp train`` as one of several processes: ``--coordinator HOST:PORT --num-processes N
--process-id I`` (or JAX's variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``, or Slurm's, which JAX reads itself).

Every process reads the data and holds out the same validation rows (the split
``fit`` would make), then trains on its own shard of the training rows
(``jaxbp.distributed.shard_rows``) over all devices of all processes. Only process 0
writes the run folder (checkpoints, history, plots); ``--resume`` reads it on every
process. The result equals a single-process run to float32 rounding.
"""

from __future__ import annotations

import os

_STATE = {"multi": False}
ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")  # as jaxbp.distributed


def wanted(args) -> bool:
    """True when the flags, JAX's variables or Slurm ask for several processes."""
    given = (getattr(args, name, None) for name in ("coordinator", "num_processes", "process_id"))
    slurm = "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    return any(v is not None for v in given) or any(os.environ.get(v) for v in ENV) or slurm


def start(args) -> bool:
    """Start JAX's distributed runtime when asked to; True if this is one of several processes."""
    if not wanted(args):
        return False
    if (getattr(args, "seeds", None) or 1) > 1:
        raise ValueError("--seeds trains on one process; leave out --coordinator and the rest")
    from jaxbp import distributed

    _STATE["multi"] = distributed.initialize(
        getattr(args, "coordinator", None), getattr(args, "num_processes", None),
        getattr(args, "process_id", None),
    )  # fmt: skip
    return _STATE["multi"]


def active() -> bool:
    return _STATE["multi"]


def is_writer() -> bool:
    """Only process 0 writes the run folder."""
    if not _STATE["multi"]:
        return True
    import jax

    return jax.process_index() == 0


def fit_data(X, Y, key, validation_fraction: float, devices) -> dict:
    """``fit``'s data keywords: all of it in one process; with several, this process's rows
    of the training part, the held-out rows as ``validation=``, and every device."""
    if not _STATE["multi"]:
        return {"X": X, "Y": Y, "validation_fraction": validation_fraction, "devices": devices}
    import jax

    from jaxbp import distributed, train

    X, Y, Xv, Yv = train.split_validation(key, X, Y, validation_fraction)
    mine = distributed.shard_rows(X.shape[0])
    return {"X": X[mine], "Y": Y[mine], "validation": (Xv, Yv), "devices": jax.device_count()}


def follower_callback(epoch, result) -> bool:
    """Processes other than 0 save nothing; they stop on Ctrl-C as process 0 does."""
    from jaxbp.cli import interrupt

    return interrupt.requested()
