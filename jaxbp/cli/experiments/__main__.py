"""``jaxbp experiment NAME|all [--out DIR] [--quick] [--seed S]``."""

from __future__ import annotations

import argparse
import sys

from jaxbp.cli.experiments import add_arguments, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="jaxbp experiment",
        description="Run the lecture's claims as experiments: results.json, figures, a table.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
