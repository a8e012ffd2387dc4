"""The lecture's claims as experiments: each one regenerates its figures in one command.

``jaxbp experiment NAME --out DIR`` (NAME one of :data:`NAMES`, or ``all``)
runs the experiment into ``DIR/NAME/``: ``results.json`` (the numbers, the settings,
library versions and timings, written atomically) and one or more PNG figures, and
prints a short table. ``--quick`` is the small version the test suite runs.

- ``universal``: "One hidden layer NN can approximate almost arbitrary target g."
- ``features``: "The network extracts features z and puts them into a linear model."
- ``optimizers``: "Which algorithm should we choose? Gradient descent or accelerated
  gradient descent?"
- ``bp-cost``: "Backpropagation is an efficient way of computing the gradient."
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from pathlib import Path

NAMES = ("universal", "features", "optimizers", "bp-cost")
_MODULES = {
    "universal": "universal",
    "features": "features",
    "optimizers": "optimizers",
    "bp-cost": "bp_cost",
}


def module(name: str):
    """The module implementing experiment ``name`` (imported on first use)."""
    if name not in _MODULES:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"jaxbp.cli.experiments.{_MODULES[name]}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the experiment command's arguments: ``name``, ``--out``, ``--quick``, ``--seed``."""
    parser.add_argument("name", choices=[*NAMES, "all"], help="the experiment to run, or all")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("experiments"),
        help="output folder; each experiment writes OUT/NAME/ (default: ./experiments)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small settings (about 15 s each; for tests)"
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of experiments already in OUT (a non-empty OUT/NAME is refused)",
    )


def run_experiment(name: str, out: Path, *, quick: bool, seed: int) -> dict:
    """Run experiment ``name`` into ``out / name`` and return its results dict
    (the content of ``out / name / results.json``)."""
    return module(name).run(Path(out) / name, quick=quick, seed=seed)


def run(args: argparse.Namespace) -> int:
    """Run the experiment(s) named by ``args`` (see :func:`add_arguments`); print tables."""
    names = NAMES if args.name == "all" else (args.name,)
    for name in names:  # refuse before anything runs, as `jaxbp train --out` does
        folder = Path(args.out) / name
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--out {folder} is an existing file, not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not getattr(args, "overwrite", False):
            raise ValueError(
                f"--out {folder} is a non-empty folder; pass --overwrite to replace the "
                "experiment's files, or choose another --out"
            )
    from jaxbp.cli import interrupt
    from jaxbp.cli.experiments import common

    out_created = not Path(args.out).exists()
    for name in names:
        interrupt.check()
        folder = Path(args.out) / name
        created = not folder.exists()
        common.WRITTEN.clear()
        try:
            results = run_experiment(name, args.out, quick=args.quick, seed=args.seed)
            interrupt.check()
        except BaseException:  # an interrupt or a failure: no half-written experiment stays
            common.remove_written(folder if created else None)
            if out_created:
                with contextlib.suppress(OSError):
                    Path(args.out).rmdir()  # only if empty: nothing of the user's
            raise
        folder = Path(args.out) / name
        print(f"== {name}: {results['claim']}")
        print(module(name).summary(results))
        files = ", ".join(["results.json", *results["figures"]])
        print(f"({results['timings']['total_s']:.1f} s; wrote {folder}/: {files})\n")
    return 0


__all__ = ["NAMES", "add_arguments", "module", "run", "run_experiment"]
