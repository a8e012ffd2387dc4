"""Benchmark results: summaries, targets, the Markdown tables, writing JSON and Markdown.

Everything here works on a results document (``benchmarks.run.SCHEMA``) and its raw
samples; nothing is timed.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # python benchmarks/report.py: import from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks import measure
from benchmarks.measure import BF16_METHODS, METHODS, PEAK, PEAK_BF16, PEAKS

SECTION = "jaxbp-bench"

# Targets: jaxbp epoch ≤ factor × autodiff epoch; speed-up over sklearn / torch ≥ factor;
# percent of the jitted matmul peak ≥ value.
TARGETS = {
    "autodiff": {"S": 1.02, "M": 1.02, "L": 1.02},
    "sklearn": {"S": 8.0, "M": 4.0, "L": 3.0},
    "torch": {"S": 5.0, "M": 2.5, "L": 2.0},
    "peak": {"S": 50.0, "M": 85.0, "L": 85.0},
}


# ---------------------------------------------------------------------------
# Summary


def samples(runs: list[dict], key: str = "samples_s") -> list[float]:
    """Every raw sample under ``key`` of ``runs``, in order."""
    return [s for run in runs for s in run.get(key, [])]


def _per_round_medians(runs: list[dict]) -> dict[int, float]:
    return {run["round"]: statistics.median(run["samples_s"]) for run in runs if run["samples_s"]}


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def select_runs(record: dict, noisy_cores: float | None, min_clean: int = 2) -> tuple[list, str]:
    """The runs a summary uses: the clean ones (other processes used at most
    ``noisy_cores`` cores during the timed section) when there are ``min_clean`` of
    them, else every successful run. Returns (runs, "clean" or "all")."""
    ok = [run for run in record["runs"] if "error" not in run and run.get("samples_s")]
    if noisy_cores is None:
        return ok, "all"
    clean = [
        run for run in ok
        if run.get("foreign_cores") is not None and run["foreign_cores"] <= noisy_cores
    ]  # fmt: skip
    return (clean, "clean") if len(clean) >= min(min_clean, len(ok)) else (ok, "all")


def _peak_summary(runs: list[dict], used: str, peak_flops: int) -> dict:
    st = _stats(samples(runs))
    numpy_peak = _stats(samples(runs, "numpy_samples_s"))
    return {
        "time": st,
        "rounds": len(runs),
        "used": used,
        "gflops": peak_flops / st["median"] / 1e9 if st else None,
        "numpy_gflops": peak_flops / numpy_peak["median"] / 1e9 if numpy_peak else None,
    }


def _ratio(selected: dict, base: str, other: str, base_st: dict, st: dict) -> dict:
    """``other``'s median epoch / ``base``'s, and the range of the same-round ratios."""
    mine = _per_round_medians(selected[base][0])
    theirs = _per_round_medians(selected[other][0])
    paired = [theirs[r] / mine[r] for r in mine if r in theirs]
    return {
        "speedup": st["median"] / base_st["median"],  # other / base
        "per_round": [min(paired), max(paired)] if paired else None,
    }


def summarize(doc: dict) -> dict:
    """Medians, min–max, GFLOP/s, percent of peak, ratios and targets from raw samples.

    The bf16 methods' percent of peak is of the bf16 peak (``peak_bf16``; None when it
    was not run); torch-bf16's speed-up is against jaxbp-bf16 when that ran (``base``).

    Per method, only the clean runs are used when there are at least two (see
    :func:`select_runs`; the threshold is the run's ``noisy_cores``); every run is kept
    in the JSON either way.
    """
    out = {}
    noisy = doc["config"].get("noisy_cores")
    for name, entry in doc["workloads"].items():
        flops = entry["spec"]["flops"]
        recs = entry["methods"]
        selected = {method: select_runs(rec, noisy) for method, rec in recs.items()}
        peak_flops = 2 * doc["config"]["peak_size"] ** 3
        peaks = {m: _peak_summary(*selected[m], peak_flops) for m in PEAKS if m in selected}
        peak = peaks.get(PEAK) or _peak_summary([], "all", peak_flops)
        peak_gflops = peak["gflops"]
        bf16_gflops = peaks[PEAK_BF16]["gflops"] if PEAK_BF16 in peaks else None
        methods = {}
        for method, rec in recs.items():
            if method in PEAKS:
                continue
            runs, used = selected[method]
            st = _stats(samples(runs))
            row = {
                "time": st,
                "rounds": len(runs),
                "rounds_run": len([run for run in rec["runs"] if "error" not in run]),
                "used": used,
                "notes": rec["notes"],
                "errors": [run["error"] for run in rec["runs"] if "error" in run],
            }
            if st:
                row["gflops"] = flops / st["median"] / 1e9
                ref = bf16_gflops if method in BF16_METHODS else peak_gflops
                row["pct_peak"] = 100 * row["gflops"] / ref if ref else None
                if method in BF16_METHODS:
                    row["peak_ref"] = PEAK_BF16
                row["cores_used"] = _median_of(runs, "cores_used")
                row["foreign_cores"] = _median_of(runs, "foreign_cores")
            methods[method] = row
        base = methods.get("jaxbp", {}).get("time")
        ratios = {}
        for other in ("jaxbp-autodiff", "jax-ref", "sklearn", "torch", "jaxbp-bf16"):
            st = methods.get(other, {}).get("time")
            if base and st:
                ratios[other] = _ratio(selected, "jaxbp", other, base, st)
        # torch-bf16 against jaxbp-bf16 (like for like), else against jaxbp.
        bf16_base = "jaxbp-bf16" if methods.get("jaxbp-bf16", {}).get("time") else "jaxbp"
        st = methods.get("torch-bf16", {}).get("time")
        base_st = methods.get(bf16_base, {}).get("time")
        if base_st and st:
            ratios["torch-bf16"] = _ratio(selected, bf16_base, "torch-bf16", base_st, st) | {
                "base": bf16_base
            }
        host = {}
        if "jaxbp" in recs:
            runs = selected["jaxbp"][0]
            host = {
                "epoch_fn": base,
                "fit1_wall": _stats([run["fit1_wall_s"] for run in runs if "fit1_wall_s" in run]),
                "fit_loop_epoch": _stats(samples(runs, "fit_loop_epoch_s")),
                "warmup": _stats([run["warmup_s"] for run in runs if "warmup_s" in run]),
                "timing_mode": runs[0].get("timing_mode") if runs else None,
            }
        out[name] = {
            "flops": flops,
            "peak": peak,
            **({"peak_bf16": peaks[PEAK_BF16]} if PEAK_BF16 in peaks else {}),
            "methods": methods,
            "ratios": ratios,
            "host": host,
            "targets": _targets(name, methods, ratios, peak_gflops),
        }
    return out


def _median_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _targets(name: str, methods: dict, ratios: dict, peak_gflops: float | None) -> dict:
    """Per target: the goal, the measured figure, and met (True/False); absent if unmeasured.

    Speed-up targets also get a ``ceiling``: the speed-up jaxbp would have at 100% of
    the matmul peak (peak GFLOP/s / the other method's GFLOP/s).
    """
    out = {}
    if name not in TARGETS["autodiff"]:
        return out
    auto = ratios.get("jaxbp-autodiff")
    if auto:
        factor = 1 / auto["speedup"]  # jaxbp epoch / autodiff epoch
        per_round = auto["per_round"] and [1 / auto["per_round"][1], 1 / auto["per_round"][0]]
        goal = TARGETS["autodiff"][name]
        out["autodiff"] = {"goal": goal, "value": factor, "per_round": per_round,
                           "met": factor <= goal}  # fmt: skip
    for other in ("sklearn", "torch"):
        ratio = ratios.get(other)
        if ratio:
            goal = TARGETS[other][name]
            gflops = methods[other]["gflops"]
            out[other] = {"goal": goal, "value": ratio["speedup"], "per_round": ratio["per_round"],
                          "met": ratio["speedup"] >= goal,
                          "ceiling": peak_gflops / gflops if peak_gflops else None}  # fmt: skip
    pct = methods.get("jaxbp", {}).get("pct_peak")
    if pct is not None:
        goal = TARGETS["peak"][name]
        out["peak"] = {"goal": goal, "value": pct, "per_round": None, "met": pct >= goal}
    return out


# ---------------------------------------------------------------------------
# Markdown


def format_value(value, spec: str, missing: str = "–") -> str:
    """``format(value, spec)``, or ``missing`` for None."""
    return missing if value is None else format(value, spec)


def format_seconds(value: float | None) -> str:
    """A duration as text: milliseconds below 0.1 s, else seconds; "–" for None."""
    if value is None:
        return "–"
    if value < 0.1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.3f} s"


def _range(st: dict | None) -> str:
    return "–" if not st else f"{format_seconds(st['min'])} – {format_seconds(st['max'])}"


_TARGET_ROWS = {
    "autodiff": ("jaxbp epoch ≤ {goal} × autodiff epoch", "{value:.3f}×"),
    "sklearn": ("speed-up over scikit-learn ≥ {goal}×", "{value:.2f}×"),
    "torch": ("speed-up over PyTorch eager ≥ {goal}×", "{value:.2f}×"),
    "peak": ("jaxbp ≥ {goal}% of matmul peak", "{value:.1f}%"),
}


def _speedup_cell(ratio: dict | None) -> str:
    if ratio is None:
        return "–"
    cell = f"{ratio['speedup']:.2f}×"
    if ratio["per_round"]:
        lo, hi = ratio["per_round"]
        cell += f" ({lo:.2f}–{hi:.2f})"
    if ratio.get("base", "jaxbp") != "jaxbp":
        cell += f" vs {ratio['base']}"
    return cell


def _rounds_cell(used_rounds: int, successful: int, used: str, cfg: dict) -> str:
    if cfg.get("noisy_cores") is None:
        return str(used_rounds)
    return f"{used_rounds}/{successful}" if used == "clean" else f"{successful}, *noisy*"


def render_markdown(doc: dict, source: Path | str | None = None) -> str:
    """The Markdown section (tables and method notes) for a results document.

    ``source``: the JSON file the document was read from or written to, to cite.
    """
    summary = summarize(doc)
    cfg, mach = doc["config"], doc["machine"]
    v = mach["versions"]
    lines = [
        "## Training-epoch benchmark",
        "",
        f"Generated by `python benchmarks/run.py` on {mach['date']}: {mach['cpu_model']}, "
        f"{mach['usable_cores']} usable cores, Python {mach['python']}, jax {v.get('jax')}, "
        f"jaxlib {v.get('jaxlib')}, optax {v.get('optax')}, scikit-learn {v.get('scikit-learn')}, "
        f"torch {v.get('torch') or 'not installed'}, numpy {v.get('numpy')}. "
        f"Raw samples and per-round details: `{source or 'the results JSON'}`.",
        "",
        f"One epoch of minibatch Adam (lr 1e-3) on f(x) = softmax(W relu(Vx)), float32, no "
        f"biases, synthetic data (fixed seed). Executed flops per epoch = "
        f"**{cfg['flops_formula']}** (forward 2dM + 2MK, backward 2MK + 2MK + 2dM per "
        f"sample). Peak = `jax.jit(jnp.dot)` on {cfg['peak_size']}×{cfg['peak_size']} float32, "
        f"2·{cfg['peak_size']}³ flops, median of 10, in its own subprocess in every round. "
        f"Each (method, round) runs in a fresh subprocess, warm-up/compilation excluded; "
        f"{cfg['rounds']} interleaved rounds in rotated order; median and min–max over the "
        f"timed epochs of the *clean* rounds. Speed-up = other's median epoch / jaxbp's "
        f"(higher is better for jaxbp); the per-round range pairs the medians of the same "
        f"round. `cores` = CPU time / wall of the timed section; `others` = cores used "
        f"meanwhile by other processes on the machine (noise).",
    ]
    if PEAK_BF16 in cfg["methods"] or any(m in BF16_METHODS for m in cfg["methods"]):
        lines += [
            "",
            f'bfloat16 rows: `jaxbp-bf16` is the same epoch with `Net(matmul_dtype="bfloat16")` '
            f"(bf16 products, float32 accumulation; parameters, Adam state and loss float32); "
            f"`torch-bf16` runs the forward pass and the loss under "
            f'`torch.autocast("cpu", dtype=torch.bfloat16)`. Their % of peak is of the bf16 '
            f"peak, `jnp.dot(a, b, preferred_element_type=float32)` on {cfg['peak_size']}×"
            f"{cfg['peak_size']} bfloat16 (same flops, same protocol), marked (bf16). The "
            f"jaxbp-bf16 speed-up cell is its epoch / jaxbp's (float32); torch-bf16's is "
            f"against jaxbp-bf16 when that ran (marked).",
        ]
    if cfg.get("noisy_cores") is not None:
        lines += [
            "",
            f"Noise control: before each subprocess the harness waits (up to "
            f"{cfg.get('quiet_wait_s', 0):g} s) for other processes to use < "
            f"{cfg['noisy_cores']:g} cores, reruns a subprocess once if they used more during "
            f"its timed section, and the tables use only clean rounds (`others` ≤ "
            f"{cfg['noisy_cores']:g}) when a method has at least 2 of them, else all rounds "
            f"(marked *noisy*). `rounds` = clean/successful; every attempt is in the JSON.",
        ]
    if cfg.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{m} ({why})" for m, why in cfg["skipped"].items())]
    for name, s in summary.items():
        spec = doc["workloads"][name]["spec"]
        lines += [
            "",
            f"### {name}: n {spec['n']}, d {spec['d']}, M {spec['hidden']}, K {spec['classes']}, "
            f"batch {spec['batch']} ({spec['steps']} steps), {s['flops'] / 1e9:.3f} GFLOP/epoch",
            "",
            "| method | epoch (median) | min – max | epochs (rounds) | GFLOP/s | % of peak "
            "| jaxbp speed-up (per round) | cores | others |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, row in s["methods"].items():
            st = row["time"]
            label = METHODS.get(method, method)
            if not st:
                why = "; ".join(row["errors"]) or "no samples"
                lines.append(f"| {label} | failed: {why} | | | | | | | |")
                continue
            ratio = s["ratios"].get(method)
            speed = "—" if method == "jaxbp" else _speedup_cell(ratio)
            pct = format_value(row["pct_peak"], ".1f")
            if row.get("peak_ref") == PEAK_BF16 and row["pct_peak"] is not None:
                pct += " (bf16)"
            notes = f" ({'; '.join(row['notes'])})" if row["notes"] else ""
            rounds = _rounds_cell(row["rounds"], row["rounds_run"], row["used"], cfg)
            lines.append(
                f"| {label}{notes} | {format_seconds(st['median'])} | {_range(st)} | {st['n']} "
                f"({rounds}) | {row['gflops']:.1f} | {pct} "
                f"| {speed} | {format_value(row['cores_used'], '.2f')} "
                f"| {format_value(row['foreign_cores'], '.2f')} |"
            )
        peak = s["peak"]
        if peak["time"]:
            lines.append(
                f"| peak: jax.jit(jnp.dot) {cfg['peak_size']}³ "
                f"| {format_seconds(peak['time']['median'])} "
                f"| {_range(peak['time'])} | {peak['time']['n']} ({peak['rounds']}) "
                f"| {peak['gflops']:.1f} | 100 "
                f"| numpy/BLAS same matmul: {format_value(peak['numpy_gflops'], '.1f')} "
                "GFLOP/s | | |"
            )
        bf16 = s.get("peak_bf16")
        if bf16 and bf16["time"]:
            vs = (f"bf16 / float32 peak: {bf16['gflops'] / peak['gflops']:.2f}×"
                  if peak["gflops"] else "")  # fmt: skip
            lines.append(
                f"| peak-bf16: jax.jit(jnp.dot) {cfg['peak_size']}³ bf16 → f32 "
                f"| {format_seconds(bf16['time']['median'])} "
                f"| {_range(bf16['time'])} | {bf16['time']['n']} ({bf16['rounds']}) "
                f"| {bf16['gflops']:.1f} | 100 (bf16) | {vs} | | |"
            )
    lines += ["", "### Targets", "", "| target | " + " | ".join(summary) + " |",
              "|---|" + "---|" * len(summary)]  # fmt: skip
    for key, (title, value_fmt) in _TARGET_ROWS.items():
        cells = []
        for s in summary.values():
            t = s["targets"].get(key)
            if t is None:
                cells.append("not measured")
                continue
            value = value_fmt.format(value=t["value"])
            if t["per_round"]:
                lo, hi = t["per_round"]
                value += f", rounds {lo:.2f}–{hi:.2f}"
            if t.get("ceiling"):
                value += f"; ceiling {t['ceiling']:.1f}×"
            cells.append(f"{'**met**' if t['met'] else '**not met**'} ({value})")
        goals = [f"{TARGETS[key][name]:g}" for name in summary if name in TARGETS[key]]
        goal = goals[0] if len(set(goals)) == 1 else "/".join(goals)
        lines.append(f"| {title.format(goal=goal)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Goals are given per workload (S/M/L). `rounds` = the min–max of the same-round "
        "ratios. `ceiling` = the speed-up jaxbp would reach at 100% of the matmul peak "
        "(peak GFLOP/s ÷ the other method's GFLOP/s): a goal above it cannot be met on this "
        "machine by making jaxbp faster.",
        "",
        "### jaxbp host overhead",
        "",
        "| workload | epoch fn (median) | fit loop, per epoch (epochs 2–6) "
        "| `fit(epochs=1)` wall | first epoch-fn call (trace + compile + run) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        h = s["host"]
        if not h:
            continue
        lines.append(
            f"| {name} | {format_seconds(h['epoch_fn'] and h['epoch_fn']['median'])} "
            f"| {format_seconds(h['fit_loop_epoch'] and h['fit_loop_epoch']['median'])} "
            f"| {format_seconds(h['fit1_wall'] and h['fit1_wall']['median'])} "
            f"| {format_seconds(h['warmup'] and h['warmup']['median'])} |"
        )
    modes = {s["host"].get("timing_mode") for s in summary.values() if s["host"]}
    lines += [
        "",
        "jaxbp timing: " + "; ".join(sorted(m for m in modes if m)) + ". `fit(epochs=1)` is "
        "called with numpy inputs as a user would: value checks, transfer, tracing, "
        "compilation (each call passes a new optimizer object, so fit's cached epoch "
        "function is not reused) and one epoch. The "
        "fit-loop column is fit's own `history['seconds']` (measured only where an epoch "
        "takes < 0.5 s). scikit-learn's MLPClassifier has biases (b, c) and computes its "
        "loss every step; it is timed by `partial_fit` over the whole set (one epoch).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, name: str, text: str, title: str = "# Benchmarks") -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    Everything outside the markers (hand-written notes) is kept; a missing file is
    created with ``title``; missing markers are appended.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else f"{title}\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def save_json(doc: dict, path: Path) -> None:
    """Write ``doc`` with its ``summary`` to ``path`` (atomically: a temporary file, renamed)."""
    measure.write_json(path, doc | {"summary": summarize(doc)})


# ---------------------------------------------------------------------------
# The performance page and BENCHMARKS.md, rendered from benchmarks/results/*.json
#
#     python benchmarks/report.py --md BENCHMARKS.md --readme README.md
#
# rewrites BENCHMARKS.md whole and the headline block of README.md; docs/performance.md
# gets the same sections at site build time (docs/hooks.py). Nothing here is typed by hand:
# every number comes from a result file, named beside it with its machine and date.

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]


def _load(path: Path):
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def latest_epoch_run(results: Path = RESULTS) -> Path:
    """The newest full training-epoch run (``bench-*.json`` with every CPU workload)."""
    runs = []
    for path in results.glob("bench-*.json"):
        doc = _load(path)
        full = set(measure.WORKLOADS) <= set(doc.get("workloads", {}))
        if full and not doc.get("config", {}).get("quick"):
            runs.append((doc["machine"]["date"], path))
    return max(runs)[1]


def latest_norms_run(results: Path = RESULTS) -> Path:
    """The newest full per-example-norms run (``norms-*.json``, not ``--quick``)."""
    from benchmarks.norms import FULL

    runs = [(_load(p), p) for p in results.glob("norms-*.json")]
    return max((d["machine"]["date"], p) for d, p in runs if d["config"]["size"] == FULL)[1]


def _workload_label(sizes: dict) -> str:
    from benchmarks.workloads import name_of

    n, d, M, K, batch = (sizes[k] for k in ("n", "d", "M", "K", "batch"))
    name = name_of(n, d, M, K, batch) or "unnamed"
    return f"{name} (n {n}, d {d}, M {M}, K {K}, batch {batch})"


def render_epoch(results: Path = RESULTS) -> str:
    path = latest_epoch_run(results)
    return render_markdown(_load(path), _rel(path))


def render_norms(results: Path = RESULTS) -> str:
    from benchmarks import norms

    path = latest_norms_run(results)
    return norms.render(_load(path), _rel(path))


def render_bf16(results: Path = RESULTS) -> str:
    path = results / "bf16_epoch.json"
    doc = _load(path)
    cpu = doc["cpu"]
    lines = [
        "## bfloat16 against float32, one epoch in one process",
        "",
        f"`python benchmarks/bf16_epoch.py --rounds {doc['rounds']}` on {doc['date']} "
        f"({cpu['model']}, {cpu['cpus']} cores, jax {doc['jax']}; raw: `{_rel(path)}`): "
        "one epoch of `jaxbp.epoch.compile_epoch` (Adam, relu, softmax) with "
        '`Net(matmul_dtype="bfloat16")` against float32, medians of interleaved rounds; '
        "`rows` are the previous layout of the matrix-form BP (`matrix_grad_rows`); the "
        "two 2048² dot peaks are timed in the same rounds.",
        "",
        "| workload | float32 | bf16 | float32 rows | bf16 rows | bf16 speed-up "
        "| bf16 / f32 peak | bf16 epoch, % of bf16 peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in doc["results"].values():
        med, gf = entry["median_seconds"], entry["gflops"]
        lines.append(
            f"| {_workload_label(entry['workload'])} | {format_seconds(med['float32'])} "
            f"| {format_seconds(med['bfloat16'])} | {format_seconds(med['float32 rows'])} "
            f"| {format_seconds(med['bf16 rows'])} "
            f"| {1 / entry['bf16_over_f32_time']:.2f}× | {entry['peak_bf16_over_f32']:.2f}× "
            f"| {100 * gf['bfloat16'] / gf['peak bf16']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def render_many(results: Path = RESULTS) -> str:
    docs = sorted(
        (_load(p) | {"_path": p} for p in results.glob("many-sweep-*.json")),
        key=lambda d: (d["workload"]["M"], d["workload"]["models"]),
    )
    first = docs[0]
    cpu = first["machine"]["cpu"]
    lines = [
        "## Many models at once (`fit_many`)",
        "",
        f"`python benchmarks/many.py --models N --hidden M` ({cpu['model']}, {cpu['cpus']} "
        f"cores, jax {first['versions']['jax']}; "
        f"{', '.join(sorted({d['date'][:10] for d in docs}))}; raw: "
        f"`{_rel(results)}/many-sweep-*.json`): workload S with width M, "
        f"{first['shuffles']} minibatch order; sequential = {first['timing']['sequential']}; "
        f"together = {first['timing']['together']}. GFLOP/s = N · n(4dM + 6MK) / epoch.",
        "",
        "| models | M | sequential | together | ratio | seq. GFLOP/s | together GFLOP/s "
        "| peak GFLOP/s | target | date |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for d in docs:
        med, gf, w = d["median_seconds"], d["gflops"], d["workload"]
        target = f"≥ {d['target']:g}×: {'met' if d['met'] else 'not met'}"
        lines.append(
            f"| {w['models']} | {w['M']} | {format_seconds(med['sequential'])} "
            f"| {format_seconds(med['together'])} | {d['throughput_ratio']:.2f}× "
            f"| {gf['sequential']:.1f} | {gf['together']:.1f} | {gf['peak']:.1f} | {target} "
            f"| {d['date']} |"
        )
    return "\n".join(lines) + "\n"


def render_startup(results: Path = RESULTS) -> str:
    path = results / "startup.json"
    doc = _load(path)
    roots = list(dict.fromkeys(row["root"] for row in doc["rows"]))
    cases = list(dict.fromkeys(row["case"] for row in doc["rows"]))
    med = {(row["root"], row["case"]): row["median_s"] for row in doc["rows"]}
    lines = [
        "## Startup",
        "",
        f"`python benchmarks/startup.py --runs {doc['runs']} --root BEFORE --root .` "
        f"({doc['cpu']}, {doc['cores']} cores, Python {doc['python']}; the file records no "
        f"date; raw: `{_rel(path)}`): whole processes, median of {doc['runs']} interleaved "
        "runs, in seconds. The first root is the code before the startup work, the last "
        "the code after it.",
        "",
        "| case | "
        + " | ".join(
            ("before" if i == 0 else "after") if len(roots) == 2 else f"`{r}`"
            for i, r in enumerate(roots)
        )
        + " |",
        "|---|" + "---:|" * len(roots),
    ]
    for case in cases:
        cells = [format_value(med.get((r, case)), ".2f") for r in roots]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_memory(results: Path = RESULTS) -> str:
    path = results / "memory.json"
    rows = _load(path)
    lines = [
        "## Memory",
        "",
        f"`python benchmarks/memory.py --n 200000 1000000` (the file records no machine or "
        f"date; raw: `{_rel(path)}`): peak resident memory of one call beyond the data, in a "
        "fresh process per case; X (n, 100) float32, K 10, M 32, softmax, Adam, batch 256, "
        "one epoch.",
        "",
        "| call | n | X MiB | rise MiB | rise / X | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['what']}` | {r['n']:,} | {r['X_MiB']:.0f} | {r['rise_MiB']:.0f} "
            f"| {r['rise_over_X']:.2f}× | {r['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def render_distributed(results: Path = RESULTS) -> str:
    path = results / "distributed.json"
    lines = ["## Several processes (data parallel over JAX's distributed runtime)", ""]
    if not path.exists():
        return "\n".join([*lines, "No result file yet (`benchmarks/results/distributed.json`)."])
    doc = _load(path)
    a = doc["args"]
    lines += [
        f"`python benchmarks/distributed.py` ({doc['cpu']}, {doc['cores']} cores; the file "
        f"records no date; raw: `{_rel(path)}`): n {a['n']}, d {a['d']}, M {a['hidden']}, "
        f"batch {a['batch']}, {a['epochs']} epochs; local processes on one machine, "
        "gradients all-reduced between them.",
        "",
        "| processes | epoch (s) | per step (µs) | collectives per step (µs) | final loss |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['processes']} | {r['epoch_s']:.3f} | {r['step_us']:,.0f} "
            f"| {format_value(r.get('collective_us'), ',.0f')} | {r['loss']:.6f} |"
        )
    return "\n".join(lines) + "\n"


EXPERIMENTS = ROOT / "docs" / "experiments"


def render_experiment_times(experiments: Path = EXPERIMENTS) -> str:
    """The wall time of each experiment's last run (its ``results.json``), one line."""
    parts = []
    for name in ("universal", "features", "optimizers", "bp-cost"):
        path = experiments / name / "results.json"
        if path.exists():
            parts.append(f"{name} {_load(path)['timings']['total_s']:.1f} s")
    return "Wall time of each run, from its `results.json`: " + ", ".join(parts) + ".\n"


def render_bp_cost(experiments: Path = EXPERIMENTS) -> str:
    """The bp-cost experiment's table: time of each gradient against P."""
    path = experiments / "bp-cost" / "results.json"
    doc = _load(path)
    lines = [
        f"(From `{_rel(path)}`.)",
        "",
        "| M | P | forward | BP (batch_grad) | jax.grad | finite differences "
        "| BP / forward | FD / BP |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = zip(
        doc["widths"], doc["params"], doc["forward_s"], doc["bp_s"], doc["autodiff_s"],
        doc["fd_s"], doc["fd_coordinates_timed"], doc["bp_over_forward"], doc["fd_over_bp"],
        strict=True,
    )  # fmt: skip
    for M, P, fwd, bp, ad, fd, timed, ratio, fd_ratio in rows:
        scaled = " (scaled)" if timed < P else ""
        lines.append(
            f"| {M} | {P:,} | {format_seconds(fwd)} | {format_seconds(bp)} "
            f"| {format_seconds(ad)} | {format_seconds(fd)}{scaled} | {ratio:.1f} "
            f"| {fd_ratio:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def render_workloads() -> str:
    from benchmarks.workloads import WORKLOADS

    lines = [
        "## Workloads",
        "",
        "Every script takes its sizes from `benchmarks/workloads.py`; a result is shown "
        "under the name whose sizes it has.",
        "",
        "| name | n | d | M | K | batch | GFLOP per epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in WORKLOADS.values():
        lines.append(
            f"| {w.name} | {w.n:,} | {w.d} | {w.hidden} | {w.classes} | {w.batch} "
            f"| {w.flops / 1e9:.3f} |"
        )
    return "\n".join(lines) + "\n"


def headlines(results: Path = RESULTS) -> str:
    """One line per headline figure, each with its source, machine and date (for the README)."""
    epoch_path = latest_epoch_run(results)
    doc = _load(epoch_path)
    s, mach = summarize(doc), doc["machine"]
    where = f"{mach['cpu_model']}, {mach['usable_cores']} cores, {mach['date'][:10]}"
    sk = [s[w]["ratios"]["sklearn"]["speedup"] for w in measure.WORKLOADS]
    pct = [s[w]["methods"]["jaxbp"]["pct_peak"] for w in measure.WORKLOADS]
    bf16 = [
        s[w]["methods"]["jaxbp"]["time"]["median"] / s[w]["methods"]["jaxbp-bf16"]["time"]["median"]
        for w in measure.WORKLOADS
    ]
    norms_path = latest_norms_run(results)
    norms = _load(norms_path)
    nm = norms["machine"]
    med = {m: statistics.median(samples([r for r in runs if "error" not in r]))
           for m, runs in norms["runs"].items()}  # fmt: skip
    ratio = med["vmap-grad"] / med["jaxbp"]
    startup = _load(results / "startup.json")
    last_root = startup["rows"][-1]["root"]
    cold = next(r["median_s"] for r in startup["rows"]
                if r["root"] == last_root and r["case"] == "train (cold cache)")  # fmt: skip
    many = _load(results / "many-sweep-m64-M128.json")
    src = _rel(epoch_path)
    return "\n".join([
        f"- Epoch vs scikit-learn's `MLPClassifier`: {sk[0]:.1f}× / {sk[1]:.1f}× / {sk[2]:.1f}× "
        f"faster on S / M / L, at {pct[0]:.0f}% / {pct[1]:.0f}% / {pct[2]:.0f}% of the matmul "
        f"peak ({where}; `{src}`).",
        f"- bfloat16 epoch vs float32: {bf16[0]:.2f}× / {bf16[1]:.2f}× / {bf16[2]:.2f}× on "
        f"S / M / L ({where}; `{src}`).",
        f"- `per_sample_grad_norms` vs norms of `vmap(grad)`: {ratio:.0f}× faster "
        f"({nm['cpu_model']}, {nm['usable_cores']} cores, {nm['date'][:10]}; "
        f"`{_rel(norms_path)}`).",
        f"- 64 models of S with `fit_many` vs one by one: {many['throughput_ratio']:.2f}× "
        f"({many['machine']['cpu']['model']}, {many['machine']['cpu']['cpus']} cores, "
        f"{many['date'][:10]}; `benchmarks/results/many-sweep-m64-M128.json`).",
        f"- Default `jaxbp train`, empty compilation cache: {cold:.1f} s, whole process "
        f"({startup['cpu']}, {startup['cores']} cores, date not recorded; "
        "`benchmarks/results/startup.json`).",
        "- GPU: not measured yet (`benchmarks/gpu.py` is ready).",
    ]) + "\n"  # fmt: skip


SECTIONS = {
    "workloads": render_workloads,
    "epoch": render_epoch,
    "norms": render_norms,
    "bf16": render_bf16,
    "many": render_many,
    "startup": render_startup,
    "memory": render_memory,
    "distributed": render_distributed,
    "headlines": headlines,
}


# Rendered from the experiments' results.json (docs/experiments/), for docs/experiments.md.
EXPERIMENT_SECTIONS = {
    "experiment-times": render_experiment_times,
    "bp-cost": render_bp_cost,
}


def render_section(name: str, results: Path | None = None) -> str:
    """Section ``name`` of :data:`SECTIONS` rendered from ``results`` (default: the repo's),
    or of :data:`EXPERIMENT_SECTIONS` from docs/experiments/."""
    if name in EXPERIMENT_SECTIONS:
        return EXPERIMENT_SECTIONS[name]()
    fn = SECTIONS[name]
    return fn() if name == "workloads" else fn(results or RESULTS)


def benchmarks_md(results: Path | None = None) -> str:
    """BENCHMARKS.md, whole: every section, generated."""
    parts = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python benchmarks/report.py --md BENCHMARKS.md`: do not edit. -->",
        "",
        "Every table below is rendered from the result files in `benchmarks/results/`, "
        "each named with its machine and date. The same tables, with what they mean and "
        "how to reproduce them, are on the documentation site's performance page "
        "(`docs/performance.md`).",
        "",
    ]
    for name in SECTIONS:
        if name != "headlines":
            parts += [render_section(name, results).rstrip(), ""]
    return "\n".join(parts)


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->``
    replaced by ``body``; a ValueError if the markers are missing."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"markers {begin} … {end} not found")
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body.rstrip() + "\n" + end + rest.split(end, 1)[1]


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Render the benchmark results as Markdown.")
    p.add_argument("--md", type=Path, metavar="PATH", help="write BENCHMARKS.md (whole) here")
    p.add_argument("--readme", type=Path, metavar="PATH",
                   help="rewrite the headlines block of this README")  # fmt: skip
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    text = benchmarks_md(args.results)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    if args.readme:
        old = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(
            replace_block(old, "headlines", headlines(args.results)), encoding="utf-8"
        )
    if not (args.md or args.readme):
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
