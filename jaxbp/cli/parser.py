"""The argument parser of the ``jaxbp`` command: every flag with its help and default."""

from __future__ import annotations

import argparse

from jaxbp import names
from jaxbp.cli.config import CHANGEABLE_ON_RESUME, RunConfig

EXIT_USAGE = 2
DEFAULTS = RunConfig()


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: no usage block, and "did you mean --hidden?"."""

    argv: list[str] | None = None
    root: argparse.ArgumentParser | None = None

    def error(self, message):
        hint = self._suggestion(message)
        help_hint = f" (see {self.prog} --help)" if not hint else ""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint}{help_hint}\n")

    def _suggestion(self, message: str) -> str:
        """ "; did you mean --hidden?" for the first unknown flag close to a known one."""
        import difflib

        argv = self.argv or (self.root.argv if self.root else None) or []
        options = _options_of(self, argv)
        tokens = [t.split("=")[0] for t in argv if t.startswith("--")]
        if "unrecognized arguments:" in message:
            tokens = message.split("unrecognized arguments:", 1)[1].split() + tokens
        for token in tokens:
            if token.startswith("--") and token not in options:
                close = difflib.get_close_matches(token.split("=")[0], options, n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


class _Renamed(argparse.Action):
    """A flag's old spelling, kept for one release: it stores under the new flag's name
    and prints a one-line deprecation notice on stderr. Hidden from ``--help``."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        kwargs.setdefault("default", argparse.SUPPRESS)
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(
            f"{parser.prog}: {option_string} is deprecated and will be removed in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _add_outputs(p: argparse.ArgumentParser, default: int, old: str) -> None:
    """The output width K: ``--outputs`` everywhere (``out`` in the API), ``old`` deprecated."""
    p.add_argument(
        "--outputs",
        dest="out",
        type=positive_int,
        default=default,
        metavar="K",
        help=f"output size K (default {default}; 1 for logistic)",
    )
    p.add_argument(old, dest="out", type=positive_int, action=_Renamed, new="--outputs")


def _options_of(p: argparse.ArgumentParser, argv) -> list[str]:
    """The long options of the subcommand named in ``argv`` (or of ``p`` itself)."""
    options = [o for a in p._actions for o in a.option_strings if o.startswith("--")]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction) and argv:
            for token in argv:
                if token in action.choices:
                    return _options_of(action.choices[token], None)
    return options


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def int_in(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi] (a one-line error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo} to {hi}, got {value}")
        return value

    return parse


MAX_SEEDS = 10_000  # --seeds trains this many networks at once, in one process's memory


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def batch_size(text: str) -> int | str:
    if text == "full":
        return "full"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"--batch-size must be a positive integer or 'full', got {text!r}"
        )
    return value


def _choices(names) -> str:
    return ", ".join(names)


def _add_train(sub) -> None:
    d = DEFAULTS
    p = sub.add_parser(
        "train",
        help="train a network (default: relu, 64 hidden, softmax, Adam on the digits)",
        description="Train f(x) = h(W σ(Vx)) with hand-written backprop and an optax optimizer. "
        f"With --resume, only {', '.join('--' + c for c in CHANGEABLE_ON_RESUME)} may differ "
        "from the run's own settings.",
    )
    p.add_argument(
        "--data", help=f"one of {_choices(names.DATA)}, or a .csv/.npz file (default: {d.data})"
    )
    p.add_argument("--target", help="the label column of a CSV file")
    p.add_argument(
        "--weight-column",
        metavar="COLUMN",
        help="a CSV column of sample weights sᵢ >= 0: the loss is Σ sᵢℓᵢ / Σ sᵢ",
    )
    p.add_argument(
        "--class-weight",
        choices=["balanced"],
        help="'balanced': class c weighs n / (C n_c), so every class counts the same",
    )
    p.add_argument(
        "--activation",
        choices=names.ACTIVATIONS,
        metavar="NAME",
        help=f"σ: {_choices(names.ACTIVATIONS)} (default: {d.activation})",
    )
    p.add_argument(
        "--hidden", type=positive_int, metavar="M", help=f"hidden width M (default: {d.hidden})"
    )
    p.add_argument(
        "--head",
        choices=names.HEADS,
        help="output head (default: softmax for classes, squared for regression)",
    )
    p.add_argument(
        "--output",
        choices=names.ACTIVATIONS,
        metavar="NAME",
        help="output map h of the squared head (default: identity)",
    )
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        help="offsets b, c in both layers (default: --bias)",
    )
    p.add_argument(
        "--optimizer",
        choices=names.OPTIMIZERS,
        metavar="NAME",
        help=f"{_choices(names.OPTIMIZERS)} (default: {d.optimizer})",
    )
    p.add_argument("--lr", type=positive_float, help=f"learning rate μ₀ (default: {d.lr:g})")
    p.add_argument(
        "--schedule",
        choices=names.SCHEDULES,
        metavar="NAME",
        help=f"μ_k: {_choices(names.SCHEDULES)} (default: {d.schedule})",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        help=f"epochs (default: {d.epochs}); with --resume, the total to reach",
    )
    p.add_argument(
        "--batch-size",
        type=batch_size,
        metavar="N|full",
        help=f"minibatch size, or 'full' for gradient descent (default: {d.batch_size})",
    )
    p.add_argument(
        "--grad",
        choices=names.GRADIENT_METHODS,
        help="gradient route: hand-written matrix BP, vmap of the per-sample BP, or "
        f"jax.grad (default: {d.grad})",
    )
    p.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        metavar="λ",
        help="L2 penalty (λ/2)(‖V‖² + ‖W‖²); adamw's decoupled decay (default: 0)",
    )
    p.add_argument(
        "--early-stopping",
        type=positive_int,
        metavar="PATIENCE",
        help="stop when the validation loss has not improved for PATIENCE epochs",
    )
    p.add_argument(
        "--seed", type=seed, help=f"seed of the data, init and shuffles (default: {d.seed})"
    )
    p.add_argument(
        "--seeds",
        type=int_in(1, MAX_SEEDS),
        metavar="N",
        help="train N networks (seeds SEED..SEED+N-1) at once with vmap",
    )
    p.add_argument(
        "--devices",
        type=positive_int,
        metavar="N",
        help="split each minibatch over N devices (data parallel; batch size a multiple "
        "of N; on a CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)",
    )
    p.add_argument("--coordinator", metavar="HOST:PORT", help="several processes: process 0's "
                   "address (or JAX_COORDINATOR_ADDRESS; Slurm is detected)")  # fmt: skip
    p.add_argument("--num-processes", type=positive_int, metavar="N", help="processes in all")
    p.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<data>-<time>)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run files in an existing --out folder"
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--x64", action="store_true", default=None, help="train in float64")
    p.add_argument(
        "--bf16",
        action="store_true",
        default=None,
        help="mixed precision: bfloat16 matrix products, float32 parameters",
    )


def _add_gradcheck(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check the hand-written gradients against jax.grad and finite differences",
        description="Max relative errors ‖g₁ − g₂‖/max(‖g₁‖, ‖g₂‖) in float64 for every "
        "activation × head × bias; exits 1 if any exceeds its tolerance.",
    )
    p.add_argument(
        "--activations", nargs="+", choices=names.ACTIVATIONS, default=list(names.ACTIVATIONS)
    )
    p.add_argument("--heads", nargs="+", choices=names.HEADS, default=list(names.HEADS))
    p.add_argument("--n", type=positive_int, default=8, help="samples (default 8)")
    p.add_argument("--d", type=positive_int, default=3, help="input size d (default 3)")
    p.add_argument("--hidden", type=positive_int, default=5, help="hidden width M (default 5)")
    _add_outputs(p, 3, old="--classes")
    p.add_argument("--seed", type=seed, default=0, help="seed (default 0)")
    p.add_argument("--tol-autodiff", type=positive_float, default=1e-12)
    p.add_argument("--tol-fd", type=positive_float, default=1e-6)


def _add_explain(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="one sample through a tiny network, every value under its lecture equation",
    )
    p.add_argument(
        "--activation",
        default="relu",
        choices=names.ACTIVATIONS,
        metavar="NAME",
        help=f"σ: {_choices(names.ACTIVATIONS)} (default: relu)",
    )
    p.add_argument("--head", default="softmax", choices=names.HEADS, help="(default: softmax)")
    p.add_argument(
        "--output", choices=names.ACTIVATIONS, metavar="NAME", help="output map h (squared head)"
    )
    p.add_argument("--d", type=positive_int, default=3, help="input size d (default 3)")
    p.add_argument("--hidden", type=positive_int, default=4, help="hidden width M (default 4)")
    _add_outputs(p, 2, old="--out")
    p.add_argument("--bias", action="store_true", help="with offsets b, c")
    p.add_argument("--seed", type=seed, default=0, help="seed (default 0)")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split or other data")
    p.add_argument("--run", required=True, metavar="DIR", help="the run folder")
    p.add_argument("--data", help="data set or file (default: the run's own test split)")
    p.add_argument(
        "--target", help="the label column of a CSV file (default: the run's own target)"
    )


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict with a trained run: CSV/NPZ in, CSV out")
    p.add_argument("--run", required=True, metavar="DIR", help="the run folder")
    p.add_argument("--input", required=True, metavar="FILE", help="features, .csv or .npz")
    p.add_argument("--output", metavar="FILE", help="CSV to write (default: stdout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="add each class's probability as a column (classifiers)",
    )


def _add_experiment(sub) -> None:
    from jaxbp.cli import experiments

    p = sub.add_parser(
        "experiment",
        help="the lecture's claims as experiments: numbers, figures, a table (docs/experiments.md)",
        description="Run a claim of the lecture as an experiment: OUT/NAME/results.json "
        "and PNG figures.",
    )
    experiments.add_arguments(p)


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxbp`` command."""
    from jaxbp import __version__  # jaxbp imports its modules lazily: no JAX here

    p = Parser(
        prog="jaxbp",
        description="A two-layer network f(x) = h(W σ(Vx)) with hand-written backpropagation: "
        "train, evaluate, predict, gradcheck, explain, experiment.",
    )
    p.add_argument("--version", action="version", version=f"jaxbp {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    Parser.root = p
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_gradcheck(sub)
    _add_explain(sub)
    _add_experiment(sub)
    from jaxbp.cli import playground  # its flags only: the web server is imported when it runs

    playground.add_arguments(sub)
    return p
