"""Benchmark one training epoch: jaxbp vs. plain JAX, scikit-learn and PyTorch.

Run from the repository root:

    python scripts/bench.py                      # S, M, L; all methods; 5 rounds
    python scripts/bench.py --workloads S --rounds 3
    python scripts/bench.py --from-json benchmarks/results/FILE.json   # re-render BENCHMARKS.md

See ``jaxbp/bench.py`` (``jaxbp.bench.main``) for the protocol and the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxbp.bench import main

if __name__ == "__main__":
    sys.exit(main())
