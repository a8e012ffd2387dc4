"""Benchmarks of jaxbp (not installed with the package): run from the repository root.

- :mod:`benchmarks.run`: the training-epoch harness, ``python benchmarks/run.py``
  (also ``jaxbp bench``); :mod:`benchmarks.measure` holds what it times and
  :mod:`benchmarks.report` its summaries and Markdown tables.
- :mod:`benchmarks.norms`: per-example gradient norms, ``python benchmarks/norms.py``.
- :mod:`benchmarks.many`: many models at once (``fit_many``), ``python benchmarks/many.py``.

Results are written to ``benchmarks/results/*.json``; the tables of ``BENCHMARKS.md``
are rewritten only when asked (``--md BENCHMARKS.md``).
"""
