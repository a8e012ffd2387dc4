"""The ``jaxbp`` command: train, evaluate, predict, gradcheck, explain, experiment.

The benchmarks are not a command: run ``python benchmarks/run.py`` from a checkout.

The application layer: it may import the library, the library never imports it.
Every user mistake (bad argument, missing or damaged file, bad data) ends with a
one-line message on stderr and exit code 2, never a traceback. A diverged run exits
1, an interrupted one 130.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "parser"]


def _quiet_exit(signum, frame):
    os._exit(128 + signum)


def _quiet_signals() -> None:
    """A signal ends the process at once, quietly, with 128 + its number (130 for Ctrl-C)."""
    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _quiet_exit)


_AS_COMMAND = sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "jaxbp"
if _AS_COMMAND:  # until main() installs its handlers: no import traceback on Ctrl-C
    _quiet_signals()

from jaxbp.cli.parser import EXIT_USAGE, parser  # noqa: E402  (after the handlers above)


def _gradcheck(args) -> int:
    from jaxbp.cli.gradcheck_table import run_table

    return run_table(args)


def _explain(args) -> int:
    from jaxbp.cli.explain import explain

    print(
        explain(
            args.activation, args.head, d=args.d, hidden=args.hidden, out=args.out,
            seed=args.seed, bias=args.bias, output=args.output,
        )
    )  # fmt: skip
    return 0


def _train(args) -> int:
    from jaxbp.cli import commands, multiprocess

    multiprocess.start(args)  # several processes: JAX's distributed runtime, before any array
    return commands.train_command(args)


def _evaluate(args) -> int:
    from jaxbp.cli import commands

    return commands.evaluate_command(args)


def _predict(args) -> int:
    from jaxbp.cli import commands

    return commands.predict_command(args)


def _experiment(args) -> int:
    from jaxbp.cli import experiments

    return experiments.run(args)


CACHE_ENV = "JAXBP_CACHE_DIR"


def compilation_cache_dir() -> Path | None:
    """Where the command keeps JAX's persistent compilation cache, or None (off).

    ``$JAXBP_CACHE_DIR`` if set (empty, ``0`` or ``off`` turn the cache off), else
    ``$XDG_CACHE_HOME/jaxbp/jax``, else ``~/.cache/jaxbp/jax``.
    """
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxbp" / "jax"


def use_compilation_cache() -> None:
    """Switch on JAX's persistent compilation cache for this process: a second identical
    run loads its compiled programs instead of compiling them again. Only the command
    does this; ``import jaxbp`` leaves JAX's configuration alone. A cache folder set by
    the user through JAX itself (``JAX_COMPILATION_CACHE_DIR``) is kept."""
    folder = compilation_cache_dir()
    if folder is None:
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _cache_state.update(folder=folder, warned=False, showwarning=warnings.showwarning)
    warnings.showwarning = _cache_warning


_cache_state: dict = {"folder": None, "warned": False, "showwarning": None}


def _cache_warning(message, category, filename, lineno, file=None, line=None):
    """JAX warns once per damaged cache entry: one line instead, and no cache from then on."""
    if "persistent compilation cache" in str(message):
        disable_compilation_cache(str(message).split(":", 1)[0])
        return
    (_cache_state["showwarning"] or warnings._showwarning_orig)(
        message, category, filename, lineno, file, line
    )


def disable_compilation_cache(reason: str) -> None:
    """Compile without the persistent cache from now on; say so once (one line)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if not _cache_state["warned"]:
        print(
            f"jaxbp: warning: the compilation cache {_cache_state['folder']} failed ({reason}); "
            f"compiling without it (delete that folder to rebuild it)",
            file=sys.stderr,
        )
        _cache_state["warned"] = True
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    jax.clear_caches()  # a program loaded from a bad entry stays in memory otherwise


def _restore_warnings() -> None:
    if _cache_state["showwarning"] is not None:
        warnings.showwarning = _cache_state["showwarning"]
        _cache_state.update(showwarning=None, folder=None)


def _raised_inside_jax(err: BaseException) -> bool:
    """Whether ``err`` was raised by JAX's own code (its last frame is in jax or jaxlib)."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return False
    parts = Path(frames[-1].filename).parts
    return "jax" in parts or "jaxlib" in parts


def _with_cache_fallback(run, args) -> int:
    """Run the command; if JAX itself failed while the persistent cache was on (a damaged
    entry can load as another program), run it once more without the cache."""
    try:
        return run(args)
    except Exception as err:
        if _cache_state["folder"] is None or not _raised_inside_jax(err) or out_of_memory(err):
            raise
        import jax

        if not jax.config.jax_enable_compilation_cache:
            raise
        disable_compilation_cache(f"{type(err).__name__} inside JAX")
        return run(args)


def out_of_memory(err: BaseException) -> bool:
    """True for an allocation that failed: XLA's RESOURCE_EXHAUSTED, or Python's MemoryError."""
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and "RESOURCE_EXHAUSTED" in str(err)
    )


def _playground(args) -> int:
    from jaxbp.cli import playground

    return playground.run(args)


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "gradcheck": _gradcheck,
    "explain": _explain,
    "experiment": _experiment,
    "playground": _playground,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxbp`` command; returns the exit code."""
    from jaxbp.cli import interrupt

    interrupt.install()  # first of all: a signal from now on ends the command quietly
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else "jaxbp"
    args = None
    x64 = _x64()
    try:
        args = parse(argv)
        command = args.command
        if command == "train":
            interrupt.set_mode("epoch", "jaxbp train: stopping after this epoch")
        interrupt.check()
        use_compilation_cache()
        code = _with_cache_fallback(_COMMANDS[command], args)
        if code == 0:
            interrupt.check()  # a signal during the command is never swallowed
        return code
    except BrokenPipeError:  # e.g. `jaxbp explain | head`
        sys.stderr.close()
        return 0
    except (ValueError, TypeError, OSError) as err:
        # ValueError covers DataError, CheckpointError, ConfigError, RunError: problems the
        # user can fix; OSError a missing, unreadable or unwritable file.
        if os.environ.get("JAXBP_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"jaxbp {command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, MemoryError) as err:
        if not out_of_memory(err) or os.environ.get("JAXBP_DEBUG"):
            raise
        detail = " ".join(str(err).split())[:160]
        print(
            f"jaxbp {command}: error: out of memory ({detail}); try a smaller --hidden, "
            "--batch-size or --seeds",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", None)
        code = 128 + signum if signum else interrupt.exit_code()
        hint = _resume_hint(args) if args is not None else ""
        print(f"jaxbp {command}: interrupted{hint}", file=sys.stderr)
        return code
    finally:
        if _AS_COMMAND:  # the work is done: a late signal ends the exit quietly
            _quiet_signals()
        else:  # called in-process (tests, notebooks): Python's own handlers again
            interrupt.uninstall()
        _restore_warnings()
        if _x64() != x64:  # called in-process (tests, notebooks): leave JAX as it was
            import jax

            jax.config.update("jax_enable_x64", x64)


def parse(argv: list[str]):
    """The parsed arguments; a usage error is one line (with "did you mean --hidden?")."""
    p = parser()
    p.argv = argv
    return p.parse_args(argv)


def _x64() -> bool:
    """JAX's 64-bit switch (off while JAX is not imported)."""
    if "jax" not in sys.modules:
        return False
    import jax

    return bool(jax.config.jax_enable_x64)


def _resume_hint(args) -> str:
    """For an interrupted ``train``: where its saved epochs are, when a checkpoint exists."""
    folder = getattr(args, "resume", None) or getattr(args, "out", None)
    if args.command != "train" or not folder:
        return ""
    try:
        from jaxbp import checkpoint

        epoch = checkpoint.load(Path(folder) / "checkpoint.npz").epoch
    except (ValueError, OSError):
        return "; nothing was saved"
    return (
        f"; epochs up to {epoch} are saved in {folder}; "
        f"continue with: jaxbp train --resume {folder}"
    )
