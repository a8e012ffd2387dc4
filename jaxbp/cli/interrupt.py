"""Ctrl-C for ``jaxbp train``: the first asks to stop at the next safe point, the second stops now.

Installed by the command before anything heavy is imported, so that SIGINT never
lands inside an import or an XLA compilation (where it was once swallowed, once
crashed the process): the handler only sets a flag. The training loop reads the flag
after each epoch (the run's callback returns it) and the command checks it between
its steps (:func:`check`). A second Ctrl-C raises ``KeyboardInterrupt`` at once; the
loop then returns its last finished epoch (``jaxbp.train.Interrupted``). While the
command writes the run's last files (:func:`finishing`, about a second), Ctrl-C waits.
"""

from __future__ import annotations

import signal
import sys

_state = {"requested": False, "message": "", "finishing": False}


def _handler(signum, frame) -> None:
    if _state["finishing"]:
        print("\nsaving the run's files; a moment", file=sys.stderr)
        return
    if _state["requested"]:
        raise KeyboardInterrupt
    _state["requested"] = True
    print(f"\n{_state['message']} (Ctrl-C again to stop now)", file=sys.stderr)


def install(message: str) -> None:
    """Let SIGINT set the flag (``message`` is printed on the first Ctrl-C)."""
    _state.update(requested=False, message=message, finishing=False)
    signal.signal(signal.SIGINT, _handler)


def finishing() -> None:
    """From now on Ctrl-C only says to wait: the run's last files are being written."""
    _state["finishing"] = True


def requested() -> bool:
    """Whether Ctrl-C was pressed since :func:`install`."""
    return _state["requested"]


def check() -> None:
    """A safe point: raise ``KeyboardInterrupt`` if Ctrl-C was pressed."""
    if _state["requested"]:
        raise KeyboardInterrupt


def uninstall() -> None:
    """Back to Python's default: Ctrl-C raises ``KeyboardInterrupt``."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
