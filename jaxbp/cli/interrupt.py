"""Every way a ``jaxbp`` command is stopped: Ctrl-C (SIGINT), SIGTERM and SIGHUP.

Installed by :func:`jaxbp.cli.main` before anything heavy is imported, so that a
signal never lands inside an import or an XLA compilation as a traceback: the handler
only records the signal, or raises :class:`Stopped` (a ``KeyboardInterrupt``) where
that is safe. Two modes:

- ``"epoch"`` (``train``): the first signal asks to stop at the next epoch boundary
  (the run's callback returns :func:`requested`), where the checkpoint, history and
  plots are committed together; a second signal raises :class:`Stopped` at once (the
  loop returns its last finished epoch, ``jaxbp.train.Interrupted``);
- ``"now"`` (``evaluate``, ``predict``, ``experiment``, …): the first signal stops the
  command at its next safe point (:func:`check`, between its steps; a handler that
  raised at once could land in a garbage-collector callback, where Python prints and
  drops the exception); a second signal raises :class:`Stopped` at once. A command that
  returns after a signal still exits with the signal's code: a signal is never swallowed.

While the command commits files (:func:`finishing`, about a second) a signal only
says to wait; :func:`check` raises it afterwards. The exit code is 128 + the first
signal's number: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP). Cluster schedulers
(Slurm, Kubernetes, …) send SIGTERM some seconds before SIGKILL: that is enough time
to finish the epoch and commit it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_NAMES = {getattr(signal, n): n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
_state = {"signum": None, "message": "", "finishing": False, "mode": "now", "started": None}


class Stopped(KeyboardInterrupt):
    """Raised where a signal stops the command; ``signum`` is the (first) signal."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(_NAMES.get(signum, str(signum)))
        self.signum = signum


def _handler(signum, frame) -> None:
    first = _state["signum"] is None
    if first:
        _state["signum"] = signum
    if _state["finishing"]:
        print("\nsaving the files; a moment", file=sys.stderr)
        return
    if first and _state["mode"] == "now":
        return  # the command stops at its next safe point (check), never mid-callback
    if not first:
        if _in_callback(frame):  # Python would print and drop it: stop at the boundary
            return
        raise Stopped(_state["signum"])
    how = "Ctrl-C" if signum == signal.SIGINT else _NAMES.get(signum, "signal")
    print(f"\n{_state['message']} ({how}; again to stop now)", file=sys.stderr)


def _in_callback(frame) -> bool:
    """Whether ``frame`` runs a garbage-collector callback or a finaliser."""
    import gc

    codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes or frame.f_code.co_name in ("__del__", "_xla_gc_callback"):
            return True
        frame = frame.f_back
    return False


def install(message: str = "", *, mode: str = "now") -> None:
    """Let SIGINT, SIGTERM and SIGHUP stop the command (``message``: the first, in "epoch")."""
    _state.update(signum=None, message=message, finishing=False, mode=mode)
    if _state["started"] is None:
        _state["started"] = time.monotonic()
    for signum in SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(signum, _handler)


def set_mode(mode: str, message: str = "") -> None:
    """Switch to ``"epoch"`` (stop at the next epoch boundary) or ``"now"``."""
    _state.update(mode=mode, message=message)
    if mode == "now":
        check()


@contextlib.contextmanager
def committing():
    """While the body writes files, a signal waits; it is raised when the body is done."""
    before = _state["finishing"]
    _state["finishing"] = True
    try:
        yield
    finally:
        _state["finishing"] = before
    if not before and _state["mode"] == "now":
        check()


def finishing() -> None:
    """From now on a signal only says to wait: the run's last files are being written."""
    _state["finishing"] = True


def requested() -> bool:
    """Whether a signal arrived since :func:`install`."""
    return _state["signum"] is not None


def signum() -> int | None:
    return _state["signum"]


def exit_code(default: int = 130) -> int:
    """128 + the first signal's number (130 for Ctrl-C)."""
    return 128 + _state["signum"] if _state["signum"] is not None else default


def seconds() -> float:
    """Wall time since the command started (its first :func:`install`)."""
    return 0.0 if _state["started"] is None else time.monotonic() - _state["started"]


def check() -> None:
    """A safe point: raise :class:`Stopped` if a signal arrived."""
    if _state["signum"] is not None:
        raise Stopped(_state["signum"])


def uninstall() -> None:
    """Back to the defaults: SIGINT raises ``KeyboardInterrupt``, the others end the process."""
    _state.update(finishing=False, started=None)
    for signum in SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(
                signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            )
