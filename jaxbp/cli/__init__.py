"""The ``jaxbp`` command: train, evaluate, predict, gradcheck, explain, experiment.

The benchmarks are not a command: run ``python benchmarks/run.py`` from a checkout.

The application layer: it may import the library, the library never imports it.
Every user mistake (bad argument, missing or damaged file, bad data) ends with a
one-line message on stderr and exit code 2, never a traceback. A diverged run exits
1, an interrupted one 130.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxbp.cli.parser import EXIT_USAGE, parser

__all__ = ["main", "parser"]


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
    from jaxbp.cli import commands

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


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "gradcheck": _gradcheck,
    "explain": _explain,
    "experiment": _experiment,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxbp`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    x64 = _x64()
    if args.command == "train":
        from jaxbp.cli import interrupt

        interrupt.install("jaxbp train: stopping after this epoch")
    try:
        use_compilation_cache()
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. `jaxbp explain | head`
        sys.stderr.close()
        return 0
    except (ValueError, TypeError, OSError) as err:
        # ValueError covers DataError, CheckpointError, ConfigError, RunError: problems the
        # user can fix; OSError a missing, unreadable or unwritable file.
        if os.environ.get("JAXBP_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"jaxbp {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jaxbp {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    finally:
        if args.command == "train":
            from jaxbp.cli import interrupt

            interrupt.uninstall()
        if _x64() != x64:  # called in-process (tests, notebooks): leave JAX as it was
            import jax

            jax.config.update("jax_enable_x64", x64)


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
