"""What every experiment shares: result files, versions, timing, figures and tables.

Figures are built with matplotlib's object-oriented API on an Agg canvas (no
``pyplot``, no change to the user's backend); matplotlib is imported only when a
figure is drawn.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

DPI = 90
WRITTEN: list[Path] = []
"""The files the running experiment wrote (removed again if it does not finish)."""


def remove_written(created: Path | None = None) -> None:
    """Remove the files in :data:`WRITTEN`, and the folder ``created`` if now empty."""
    for path in WRITTEN:
        Path(path).unlink(missing_ok=True)
    WRITTEN.clear()
    if created is not None:
        try:
            created.rmdir()
        except OSError:
            pass


def write_json(path: Path, obj) -> Path:
    """Write ``obj`` as JSON to ``path`` through the one writer
    (:func:`jaxbp.runs.files.write_file`: temp file, fsync, rename, the user's umask)."""
    from jaxbp.runs import files

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_builtin(obj), indent=1, allow_nan=True) + "\n"
    WRITTEN.append(path)
    return files.write_file(path, text, overwrite=True, own_run=path.parent)


def finish(out, results: dict, start: float, **timings) -> dict:
    """Add the versions and the timings (``timings`` plus ``total_s`` since ``start``) to
    ``results``, write OUT/results.json and return ``results``."""
    results["versions"] = versions()
    results["timings"] = {**timings, "total_s": time.perf_counter() - start}
    write_json(Path(out) / "results.json", results)
    return results


def to_builtin(obj):
    """NumPy / JAX scalars and arrays (also inside dicts, lists, tuples) as Python values."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic | np.ndarray | jax.Array):
        return np.asarray(obj).tolist()
    return obj


def versions() -> dict[str, str]:
    """Versions of Python and the libraries an experiment ran with, and the device."""
    import matplotlib
    import optax
    import sklearn

    import jaxbp

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "jaxbp": jaxbp.__version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
    }


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, each waited for
    (``jax.block_until_ready``); call ``fn`` once before, to compile."""
    return interleaved_median_seconds({"fn": fn}, repeats)["fn"]


def interleaved_median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict:
    """Median wall time of each ``fns[name]()`` over ``repeats`` rounds; every round calls
    each function once, in turn, so that a slow spell of a shared machine hits all of
    them alike (their ratios are what the experiments compare). Compile them first."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def figure(nrows: int, ncols: int, *, size: tuple[float, float] = (3.6, 3.0), **kwargs):
    """A matplotlib Figure on an Agg canvas with an nrows × ncols grid of axes of ``size``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save(fig, path: Path) -> str:
    """Write ``fig`` to ``path`` as PNG (``DPI`` dots per inch); return the file name."""
    import io

    from jaxbp.runs import files

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    WRITTEN.append(path)
    files.write_file(path, buffer.getvalue(), overwrite=True, own_run=path.parent)
    return path.name


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain-text table: columns right-aligned, floats in 4 significant digits."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [list(map(str, header))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
