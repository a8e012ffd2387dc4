"""Time to the first result: whole ``jaxbp`` processes, median of N interleaved runs.

    python benchmarks/startup.py [--runs 5] [--root DIR ...] [--json FILE]

Cases: ``help`` (``jaxbp --help``); an argument error (``train --epochs 0``);
the default ``jaxbp train`` with an empty compilation cache (``cold``: every run gets a
new, empty ``JAXBP_CACHE_DIR``); and the same again with the cache filled by an earlier
identical run (``warm``). Each ``--root`` is a checkout whose ``jaxbp`` is run
(``python -m jaxbp.cli`` from that folder), so that a before/after pair is measured in
the same session, run by run interleaved. The targets (``--help`` < 0.3 s, a cold
default train < 5 s, plots included) are printed beside the medians, and one more,
untimed cold run with ``JAX_LOG_COMPILES=1`` counts the XLA programs a default run
compiles. Prints a table and writes JSON with the CPU model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import cpu_model, write_json  # noqa: E402

TRAIN = ["train", "--quiet", "--overwrite"]
CASES = {
    "help": ["--help"],
    "argument error": ["train", "--epochs", "0"],
    "train (cold cache)": TRAIN,
    "train (warm cache)": TRAIN,
}


def run_once(root: Path, case: str, scratch: Path) -> float:
    args = list(CASES[case])
    env = dict(os.environ)
    if case.startswith("train"):
        args += ["--out", str(scratch / "run")]
        cache = scratch / ("warm" if "warm" in case else "cold")
        if "cold" in case:
            shutil.rmtree(cache, ignore_errors=True)
        env["JAXBP_CACHE_DIR"] = str(cache)
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jaxbp.cli", *args],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t
    if done.returncode not in (0, 2):
        raise RuntimeError(f"{root}: jaxbp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


TARGETS = {"help": 0.3, "train (cold cache)": 5.0}


def programs_compiled(root: Path, scratch: Path) -> int:
    """XLA programs a default ``jaxbp train`` compiles with an empty cache (JAX's own log)."""
    env = dict(os.environ, JAX_LOG_COMPILES="1", JAXBP_CACHE_DIR=str(scratch / "count"))
    shutil.rmtree(scratch / "count", ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "jaxbp.cli", *TRAIN, "--out", str(scratch / "count-run")],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{root}: jaxbp train failed:\n{done.stderr[-2000:]}")
    return sum("Finished XLA compilation" in line for line in done.stderr.splitlines())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--root", type=Path, action="append", help="checkout(s) to time")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    roots = [r.resolve() for r in (args.root or [ROOT])]
    times = {(str(r), c): [] for r in roots for c in args.cases}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = {r: Path(tmp) / str(i) for i, r in enumerate(roots)}
        for r in roots:  # fill each warm cache once, untimed
            if "train (warm cache)" in args.cases:
                run_once(r, "train (warm cache)", scratch[r])
        for _ in range(args.runs):
            for c in args.cases:
                for r in roots:  # interleaved: every root sees the same machine load
                    times[(str(r), c)].append(run_once(r, c, scratch[r]))
        programs = {str(r): programs_compiled(r, scratch[r]) for r in roots}
    rows = [
        {"root": r, "case": c, "median_s": statistics.median(t), "runs_s": t,
         "target_s": TARGETS.get(c)}
        for (r, c), t in times.items()
    ]  # fmt: skip
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); median of {args.runs} runs; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| checkout | case | median s | min s | max s | target |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        t, target = row["runs_s"], row["target_s"]
        met = (
            ""
            if target is None
            else f"< {target:g} s: " + ("met" if row["median_s"] < target else "NOT met")
        )
        print(f"| {row['root']} | {row['case']} | {row['median_s']:.2f} | {min(t):.2f} "
              f"| {max(t):.2f} | {met} |")  # fmt: skip
    for root, count in programs.items():
        print(f"{root}: a default `jaxbp train` compiles {count} XLA programs (empty cache)")
    if args.json:
        doc = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0],
               "runs": args.runs, "rows": rows, "xla_programs": programs,
               "load_average": os.getloadavg()[0]}  # fmt: skip
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
