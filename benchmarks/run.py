"""The benchmark harness: subprocess control, interleaved rounds, the command line.

Protocol: every (method, round) runs in a fresh subprocess (one library's threads
never run beside another's); what a subprocess times is in :mod:`benchmarks.measure`.
Rounds are interleaved: round r runs every method once, in an order rotated by r, so
that a slow period of a noisy machine hits all methods alike. The harness also measures
how many cores other processes use during each timed section, waits for a quiet machine
before each subprocess, reruns a noisy one once, and summarises only the clean rounds
(when a method has at least two; see :mod:`benchmarks.report`). Medians and min–max
over the timed epochs are reported; ratios compare medians of the same run; every raw
sample is kept in the JSON.

Run from the repository root::

    python benchmarks/run.py                                  # S, M, L; all methods; 5 rounds
    python benchmarks/run.py --quick --workloads S --rounds 1  # a tiny smoke run
    python benchmarks/run.py --from-json FILE --md OUT.md     # the tables of one run
    python benchmarks/report.py --md BENCHMARKS.md --readme README.md   # the published ones

Results go to ``--out`` (default ``benchmarks/results/bench-DATE.json``); the Markdown
section of this run is written only to the file given by ``--md``. BENCHMARKS.md is
generated whole by ``benchmarks/report.py`` from the newest full run in
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __name__ == "__main__" and not __package__:  # python benchmarks/run.py: import from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import report
from benchmarks.measure import (
    BF16_METHODS,
    METHODS,
    PEAK,
    PEAK_BF16,
    PEAK_N,
    PEAKS,
    QUICK,
    QUICK_PEAK_N,
    TORCH_METHODS,
    WORKLOADS,
    Workload,
    busy_cpu_seconds,
    machine_info,
    quick_workload,
    worker,
)

SCHEMA = "jaxbp-bench/1"
RESULT_TAG = "@@JAXBP-BENCH@@ "
ROOT = Path(__file__).resolve().parents[1]


def _busy_cores(window_s: float = 1.0) -> float | None:
    """Cores busy over the next ``window_s`` seconds (this process sleeps meanwhile)."""
    before = busy_cpu_seconds()
    time.sleep(window_s)
    after = busy_cpu_seconds()
    return None if before is None or after is None else (after - before) / window_s


def wait_for_quiet(threshold: float, max_wait_s: float) -> dict:
    """Sleep until other processes use fewer than ``threshold`` cores, at most ``max_wait_s``."""
    start = time.perf_counter()
    busy = _busy_cores()
    while busy is not None and busy > threshold and time.perf_counter() - start < max_wait_s:
        busy = _busy_cores()
    return {"waited_s": time.perf_counter() - start, "busy_cores_before": busy}


def _run_subprocess(method: str, wl: Workload, opts: dict, timeout_s: float) -> dict:
    """Run one worker in a fresh Python process; return its result or an ``error``."""
    env = dict(os.environ)  # the repository's jaxbp and benchmarks, whatever the cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    payload = json.dumps({"method": method, "workload": dataclasses.asdict(wl), **opts})
    # ``benchmarks`` imports no library at import time: the sklearn and torch workers
    # never load jax.
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", payload]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :]) | {"process_wall_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


# ---------------------------------------------------------------------------
# The interleaved run


def rotated(methods: Sequence[str], r: int) -> list[str]:
    """The order of round r: ``methods`` rotated left by r."""
    methods = list(methods)
    k = r % len(methods) if methods else 0
    return methods[k:] + methods[:k]


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def run(
    workloads: Sequence[Workload],
    methods: Sequence[str],
    *,
    rounds: int,
    peak_n: int = PEAK_N,
    budget_s: float = 30.0,
    slow_epoch_s: float = 60.0,
    slow_rounds: int = 2,
    noisy_cores: float | None = 0.3,
    retries: int = 1,
    quiet_wait_s: float = 0.0,
    quiet_wait_total_s: float = 360.0,
    timeout_s: float = 1800.0,
    fit_extras: str = "all",
    quick: bool = False,
    doc: dict | None = None,
    save: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the benchmark; return the results document (see ``SCHEMA``).

    Args:
        doc: an earlier results document to add ``rounds`` more rounds to (its
            configuration is used; the other configuration arguments are ignored).
        rounds: rounds per workload; round r runs every method (and the peak) once,
            in the order rotated by r, each in a fresh subprocess.
        budget_s: a worker stops timing epochs once this many seconds are spent
            (after at least one).
        slow_epoch_s, slow_rounds: a method whose first-round median epoch exceeds
            ``slow_epoch_s`` runs in the first ``slow_rounds`` rounds only.
        fit_extras: ``"all"``: the jaxbp worker also times ``fit(epochs=1)`` and, for
            short epochs, fit's per-epoch loop; ``"wall"``: only the former; ``""``: neither.
        noisy_cores, retries: a subprocess during whose timed section other processes
            used more than ``noisy_cores`` cores is rerun (up to ``retries`` times); the
            noisy attempt is kept under ``discarded``. ``None`` disables this.
        quiet_wait_s, quiet_wait_total_s: before each subprocess, wait up to
            ``quiet_wait_s`` for other processes to use fewer than ``noisy_cores`` cores
            (at most ``quiet_wait_total_s`` of waiting in the whole run).
        save: called with the document after every workload (partial results).
    """
    if doc is None:
        doc = new_document(
            methods, rounds=0, quick=quick, peak_n=peak_n, budget_s=budget_s,
            slow_epoch_s=slow_epoch_s, slow_rounds=slow_rounds, noisy_cores=noisy_cores,
            retries=retries, quiet_wait_s=quiet_wait_s,
        )  # fmt: skip
    cfg = doc["config"]
    cfg["rounds"] += rounds
    all_methods = [*cfg["methods"], PEAK]
    opts = {"peak_n": cfg["peak_size"], "budget_s": cfg["budget_s"], "fit_extras": fit_extras}
    waited = 0.0
    for wl in workloads:
        entry = doc["workloads"].setdefault(
            wl.name,
            {
                "spec": dataclasses.asdict(wl) | {"flops": wl.flops, "steps": wl.steps},
                "rounds": [],
                "capped": [],
                "methods": {m: {"runs": [], "discarded": [], "notes": []} for m in all_methods},
            },
        )
        first_round = len(entry["rounds"])
        for r in range(first_round, first_round + rounds):
            order = [
                m for m in rotated(all_methods, r)
                if not (m in entry["capped"] and r >= cfg["slow_rounds"])
            ]  # fmt: skip
            entry["rounds"].append({"round": r, "order": order})
            for method in order:
                record = entry["methods"][method]
                for attempt in range(cfg["retries"] + 1):
                    quiet = {}
                    if cfg["noisy_cores"] is not None and cfg["quiet_wait_s"] > 0:
                        budget = min(cfg["quiet_wait_s"], max(0.0, quiet_wait_total_s - waited))
                        quiet = wait_for_quiet(cfg["noisy_cores"], budget)
                        waited += quiet["waited_s"]
                    result = _run_subprocess(method, wl, opts, timeout_s) | {"round": r} | quiet
                    foreign = result.get("foreign_cores")
                    noisy = cfg["noisy_cores"] is not None and (foreign or 0) > cfg["noisy_cores"]
                    if noisy and attempt < cfg["retries"]:
                        record["discarded"].append(result)
                        log(f"  {wl.name} r{r} {method}: other processes used {foreign:.2f} "
                            "cores; rerunning")  # fmt: skip
                        continue
                    record["runs"].append(result)
                    break
                log(_progress_line(wl, r, method, result))
            if r == 0:
                for method in all_methods:
                    runs = [run for run in entry["methods"][method]["runs"] if "error" not in run]
                    first = report.samples(runs)
                    if first and statistics.median(first) > cfg["slow_epoch_s"]:
                        entry["capped"].append(method)
                        entry["methods"][method]["notes"].append(
                            f"epoch > {cfg['slow_epoch_s']:.0f} s: runs in the first "
                            f"{cfg['slow_rounds']} rounds only"
                        )
        if save is not None:
            save(doc)
    return doc


def new_document(requested: Sequence[str], *, rounds: int, quick: bool, peak_n: int,
                 budget_s: float, slow_epoch_s: float, slow_rounds: int,
                 noisy_cores: float | None, retries: int, quiet_wait_s: float) -> dict:  # fmt: skip
    """An empty results document: machine information and the run's configuration.

    ``config["methods"]`` lists the methods run besides the float32 peak (which always
    runs): the torch methods only when torch is importable, and ``peak-bf16`` (last) when
    asked for or when a bf16 method is run.
    """
    skipped = {}
    if not torch_available():
        skipped = {m: "torch is not importable" for m in TORCH_METHODS if m in requested}
    methods = [m for m in dict.fromkeys(requested) if m not in skipped and m not in PEAKS]
    if any(m in BF16_METHODS for m in methods) or PEAK_BF16 in requested:
        methods.append(PEAK_BF16)
    return {
        "schema": SCHEMA,
        "machine": machine_info(),
        "config": {
            "rounds": rounds,
            "quick": quick,
            "methods": list(methods),
            "skipped": skipped,
            "peak_size": peak_n,
            "budget_s": budget_s,
            "slow_epoch_s": slow_epoch_s,
            "slow_rounds": slow_rounds,
            "noisy_cores": noisy_cores,
            "retries": retries,
            "quiet_wait_s": quiet_wait_s,
            "flops_formula": "n(4dM + 6MK)",
            "network": "relu, softmax head, no biases, float32, Adam lr 1e-3, one epoch",
            "peaks": {m: PEAKS[m] for m in (PEAK, PEAK_BF16) if m == PEAK or m in methods},
            "protocol": (
                "fresh subprocess per (method, round); warm-up excluded; rounds interleaved "
                "in rotated order; medians and min-max over the timed epochs of the clean runs"
            ),
        },
        "workloads": {},
    }


def _progress_line(wl: Workload, r: int, method: str, result: dict) -> str:
    if "error" in result:
        return f"{wl.name} r{r} {method:15s} ERROR {result['error']}"
    samples = result["samples_s"]
    return (
        f"{wl.name} r{r} {method:15s} median {statistics.median(samples):.4f} s "
        f"({len(samples)} epochs, "
        f"cores used {report.format_value(result.get('cores_used'), '.2f')}, "
        f"others {report.format_value(result.get('foreign_cores'), '.2f')})"
    )


# ---------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench",
        description="Time one training epoch of jaxbp against plain JAX, scikit-learn and "
        "PyTorch (fresh subprocess per method, interleaved rounds).",
    )
    p.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--methods", nargs="+", choices=[*METHODS, *PEAKS], default=list(METHODS),
                   help="training methods and peaks (the float32 peak always runs; "
                        "peak-bf16 runs with any bf16 method)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/bench-DATE.json)"
    )
    p.add_argument("--md", type=Path, metavar="PATH",
                   help="also (re)write the benchmark section of this Markdown file, e.g. "
                        "BENCHMARKS.md (default: write no Markdown)")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help=f"tiny sizes ({QUICK}) and a {QUICK_PEAK_N}³ peak, for tests")  # fmt: skip
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="render the Markdown table from FILE (printed; written to --md if given)",
    )
    p.add_argument("--append", type=Path, metavar="FILE",
                   help="run --rounds more rounds of FILE's workloads and methods, add them to "
                        "FILE (or --out) and render the table")  # fmt: skip
    p.add_argument("--slow-epoch", type=float, default=60.0, metavar="S",
                   help="a method whose epoch exceeds S seconds runs in fewer rounds")  # fmt: skip
    p.add_argument("--noisy-cores", type=float, default=0.3,
                   help="rerun a sample once if other processes used more cores "
                        "meanwhile (< 0: never)")  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=15.0, metavar="S",
                   help="before each subprocess wait up to S seconds for the other processes "
                        "to go below --noisy-cores (at most 6 minutes in all)")  # fmt: skip
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or re-render saved results); return the exit status.

    ``argv``: the command-line arguments (``python benchmarks/run.py --help``); ``None``
    reads ``sys.argv``. ``jaxbp bench ARGS`` calls ``main(ARGS)``.
    """
    args = _parser().parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        result = worker(job["method"], Workload(**job["workload"]), job["peak_n"],
                         job["budget_s"], job["fit_extras"])  # fmt: skip
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    earlier = args.from_json or args.append
    if earlier:
        doc = json.loads(earlier.read_text())
        if doc.get("schema") != SCHEMA:
            print(f"bench: {earlier} is not a {SCHEMA} results file", file=sys.stderr)
            return 2
    if args.from_json:
        text = report.render_markdown(doc, args.from_json)
        if args.md:
            report.write_section(args.md, report.SECTION, text)
        print(text)
        return 0
    if args.rounds < 1:
        print("bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.append:  # more rounds of the same workloads and methods, into the same file
        quick = doc["config"]["quick"]
        workloads = [Workload(**{k: v for k, v in entry["spec"].items() if k not in ("flops",
                     "steps")}) for entry in doc["workloads"].values()]  # fmt: skip
        out = args.out or args.append
    else:
        doc, quick = None, args.quick
        workloads = [quick_workload(w) if quick else WORKLOADS[w] for w in args.workloads]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("benchmarks/results") / f"bench-{stamp}{'-quick' * quick}.json"
    print(
        f"bench: {len(workloads)} workload(s) x {args.rounds} round(s); results -> {out}",
        flush=True,
    )
    doc = run(
        workloads,
        args.methods,
        rounds=args.rounds,
        peak_n=QUICK_PEAK_N if quick else PEAK_N,
        budget_s=2.0 if quick else 30.0,
        slow_epoch_s=args.slow_epoch,
        noisy_cores=None if quick or args.noisy_cores < 0 else args.noisy_cores,
        quiet_wait_s=0.0 if quick else args.quiet_wait,
        fit_extras="wall" if quick else "all",
        quick=quick,
        doc=doc,
        save=lambda d: report.save_json(d, out),
        log=lambda line: print(line, flush=True),
    )
    doc["machine"]["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report.save_json(doc, out)
    text = report.render_markdown(doc, out)
    if args.md:
        report.write_section(args.md, report.SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
