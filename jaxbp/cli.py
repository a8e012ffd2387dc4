"""The ``jaxbp`` command: train, evaluate, predict, gradcheck, explain, bench.

Every user mistake (bad argument, missing file, bad data) ends with a one-line
message on stderr and exit code 2, never a traceback. A diverged run exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jaxbp import activations, heads, optimizers

EXIT_USAGE = 2
EXIT_DIVERGED = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage + message, exit 2 (argparse's default, kept explicit)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _add_train(sub) -> None:
    from jaxbp import data

    p = sub.add_parser(
        "train",
        help="train a network (default: relu, 64 hidden, softmax, Adam on the digits)",
        description="Train f(x) = h(W σ(Vx)) with hand-written backprop and an optax optimizer.",
    )
    p.add_argument(
        "--data",
        default="digits",
        help=f"one of {', '.join(data.NAMES)}, or a .csv/.npz file (default: digits)",
    )
    p.add_argument("--target", help="the label column of a CSV file")
    p.add_argument("--activation", default="relu", choices=activations.NAMES)
    p.add_argument("--hidden", type=_positive_int, default=64, help="hidden width M (default 64)")
    p.add_argument(
        "--head", choices=heads.NAMES, help="default: softmax for classes, squared for regression"
    )
    p.add_argument("--output", choices=activations.NAMES, help="output map h of the squared head")
    p.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--optimizer", default="adam", choices=optimizers.OPTIMIZERS)
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate μ₀ (1e-3)")
    p.add_argument("--schedule", default="constant", choices=optimizers.SCHEDULES)
    p.add_argument(
        "--epochs",
        type=_positive_int,
        help="epochs (default 40); with --resume, the total to reach (default: as planned)",
    )
    p.add_argument(
        "--batch-size",
        default="32",
        help="minibatch size, or 'full' for full-batch gradient descent (default 32)",
    )
    p.add_argument("--grad", default="matrix", choices=("matrix", "vmap", "autodiff"))
    p.add_argument("--weight-decay", type=_nonnegative_float, default=0.0)
    p.add_argument(
        "--early-stopping", type=_positive_int, metavar="PATIENCE", help="patience in epochs"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=1,
        metavar="N",
        help="train N networks (seeds SEED..SEED+N-1) at once with vmap and compare them",
    )
    p.add_argument(
        "--devices",
        type=_positive_int,
        metavar="N",
        help="split each minibatch over N devices (data parallel; batch size a multiple of N)",
    )
    p.add_argument("--out", help="run folder (default: runs/<data>-<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--x64", action="store_true", help="train in float64")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="mixed precision: bfloat16 matrix products, float32 parameters and accumulation",
    )


def _add_gradcheck(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="check the hand-written gradients against jax.grad and finite differences",
        description="Max relative errors ‖g₁ − g₂‖/max(‖g₁‖, ‖g₂‖) in float64 for every "
        "activation × head × bias; exits 1 if any exceeds its tolerance.",
    )
    p.add_argument(
        "--activations", nargs="+", choices=activations.NAMES, default=list(activations.NAMES)
    )
    p.add_argument("--heads", nargs="+", choices=heads.NAMES, default=list(heads.NAMES))
    p.add_argument("--n", type=_positive_int, default=8, help="samples (default 8)")
    p.add_argument("--d", type=_positive_int, default=3)
    p.add_argument("--hidden", type=_positive_int, default=5)
    p.add_argument("--classes", type=_positive_int, default=3, help="K for softmax/squared")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol-autodiff", type=_positive_float, default=1e-12)
    p.add_argument("--tol-fd", type=_positive_float, default=1e-6)


def _add_explain(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="one sample through a tiny network, every value under its lecture equation",
    )
    p.add_argument("--activation", default="relu", choices=activations.NAMES)
    p.add_argument("--head", default="softmax", choices=heads.NAMES)
    p.add_argument("--output", choices=activations.NAMES, help="output map h (squared head)")
    p.add_argument("--d", type=_positive_int, default=3)
    p.add_argument("--hidden", type=_positive_int, default=4)
    p.add_argument("--out", type=_positive_int, default=2, help="K (forced to 1 for logistic)")
    p.add_argument("--bias", action="store_true")
    p.add_argument("--seed", type=int, default=0)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split or other data")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("--data", help="data set or file (default: the run's own test split)")
    p.add_argument("--target", help="the label column of a CSV file")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict with a trained run: CSV/NPZ in, CSV out")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("--input", required=True, metavar="FILE", help="features, .csv or .npz")
    p.add_argument("--output", metavar="FILE", help="CSV to write (default: stdout)")


def _add_bench(sub) -> None:
    # Listed for --help only: main() hands `jaxbp bench ...` to jaxbp.bench.main.
    sub.add_parser(
        "bench",
        help="benchmark jaxbp against plain JAX, scikit-learn and PyTorch (see BENCHMARKS.md)",
    )


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxbp`` command."""
    p = _Parser(prog="jaxbp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_gradcheck(sub)
    _add_explain(sub)
    _add_bench(sub)
    return p


def _gradcheck(args) -> int:
    from jaxbp.gradcheck_table import run_table

    return run_table(args)


def _explain(args) -> int:
    from jaxbp.explain import explain

    print(
        explain(
            args.activation,
            args.head,
            d=args.d,
            hidden=args.hidden,
            out=args.out,
            seed=args.seed,
            bias=args.bias,
            output=args.output,
        )
    )
    return 0


def _train(args) -> int:
    from jaxbp import runs

    return runs.train_command(args)


def _evaluate(args) -> int:
    from jaxbp import runs

    return runs.evaluate_command(args)


def _predict(args) -> int:
    from jaxbp import runs

    return runs.predict_command(args)


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "gradcheck": _gradcheck,
    "explain": _explain,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxbp`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own arguments
        from jaxbp import bench

        return bench.main(argv[1:])
    args = parser().parse_args(argv)
    if getattr(args, "x64", False):
        import jax

        jax.config.update("jax_enable_x64", True)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        # ValueError covers DataError and CheckpointError: problems the user can fix.
        if os.environ.get("JAXBP_DEBUG"):
            raise
        print(f"jaxbp {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `jaxbp explain | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"jaxbp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
