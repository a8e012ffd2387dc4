"""The benchmark harness (``benchmarks.run``, ``benchmarks.report``): a --quick run writes
the JSON schema and a table with target cells; Markdown only when ``--md`` is given.

No timing assertions: only the shape of what the harness records and renders. The
``benchmarks`` folder is imported from the repository root (``python -m pytest`` puts
the working directory on ``sys.path``; the insert below covers a plain ``pytest``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measure, report, run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One tiny workload, one round, jaxbp matrix and autodiff (and the peak)."""
    tmp = tmp_path_factory.mktemp("bench")
    out, md = tmp / "results.json", tmp / "BENCHMARKS.md"
    argv = ["--quick", "--workloads", "S", "--methods", "jaxbp", "jaxbp-autodiff",
            "--rounds", "1", "--out", str(out), "--md", str(md)]  # fmt: skip
    assert run.main(argv) == 0
    return json.loads(out.read_text()), out, md


def test_json_schema(quick_run):
    doc, _, _ = quick_run
    assert doc["schema"] == run.SCHEMA
    machine = doc["machine"]
    for key in ("cpu_model", "cpu_count", "python", "date", "versions"):
        assert machine[key]
    for lib in ("jax", "jaxlib", "optax", "scikit-learn"):
        assert machine["versions"][lib]
    assert doc["config"]["quick"] is True and doc["config"]["rounds"] == 1
    assert doc["config"]["flops_formula"] == "n(4dM + 6MK)"
    entry = doc["workloads"]["S"]
    spec = entry["spec"]
    assert spec["flops"] == spec["n"] * (4 * spec["d"] * spec["hidden"] + 6 * spec["hidden"] * 10)
    assert set(entry["methods"]) == {"jaxbp", "jaxbp-autodiff", "peak"}
    assert entry["rounds"][0]["order"] == ["jaxbp", "jaxbp-autodiff", "peak"]
    for record in entry["methods"].values():
        (attempt,) = record["runs"]
        assert "error" not in attempt, attempt
        assert attempt["round"] == 0 and attempt["warmup_s"] > 0
        assert attempt["samples_s"] and all(s > 0 for s in attempt["samples_s"])
    jaxbp_run = entry["methods"]["jaxbp"]["runs"][0]
    assert jaxbp_run["fit1_wall_s"] > 0
    assert jaxbp_run["timing_mode"].startswith("epoch fn")
    summary = doc["summary"]["S"]
    assert summary["peak"]["gflops"] > 0
    assert summary["methods"]["jaxbp"]["pct_peak"] > 0
    assert set(summary["targets"]) == {"autodiff", "peak"}  # sklearn, torch not run


def test_table_renders_met_cells_and_regenerates(quick_run, tmp_path, capsys):
    doc, out, md = quick_run
    text = md.read_text()
    assert "<!-- jaxbp-bench:begin -->" in text and "n(4dM + 6MK)" in text
    targets = text.split("### Targets", 1)[1].split("###", 1)[0]
    rows = [line for line in targets.splitlines() if line.startswith("| jaxbp")]
    assert len(rows) == 2  # ≤ 1.02 × autodiff, % of peak
    for row in rows:
        assert "**met**" in row or "**not met**" in row
    assert targets.count("not measured") == 2  # sklearn, torch

    # --from-json rewrites only the marked section and keeps hand-written notes.
    regenerated = tmp_path / "B.md"
    regenerated.write_text("# Benchmarks\n\nnotes kept\n")
    assert run.main(["--from-json", str(out), "--md", str(regenerated)]) == 0
    again = regenerated.read_text()
    assert "notes kept" in again
    section = text.split("<!-- jaxbp-bench:begin -->")[1]
    assert again.split("<!-- jaxbp-bench:begin -->")[1] == section
    assert report.render_markdown(doc, out) in capsys.readouterr().out


def test_rotation_runs_every_method_once_per_round():
    methods = ["a", "b", "c"]
    orders = [run.rotated(methods, r) for r in range(4)]
    assert orders[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert orders[3] == orders[0]
    assert all(sorted(order) == methods for order in orders)


def test_targets_from_synthetic_samples():
    """Met / not met follow the goals, from medians of raw samples."""

    def rec(seconds):
        return {"runs": [{"round": 0, "samples_s": seconds}], "discarded": [], "notes": []}

    flops = measure.WORKLOADS["S"].flops
    peak_s = 2 * 2048**3 / 100e9  # a 100 GFLOP/s peak
    doc = {
        "config": {"peak_size": 2048},
        "workloads": {
            "S": {
                "spec": {"flops": flops},
                "methods": {
                    "jaxbp": rec([flops / 60e9]),  # 60 GFLOP/s: 60% of peak
                    "jaxbp-autodiff": rec([flops / 60e9 / 1.05]),  # autodiff 5% faster
                    "sklearn": rec([10 * flops / 60e9]),  # 10x slower
                    "torch": rec([4 * flops / 60e9]),  # 4x slower
                    "peak": rec([peak_s]),
                },
            }
        },
    }
    targets = report.summarize(doc)["S"]["targets"]
    assert targets["peak"]["value"] == pytest.approx(60)
    assert targets["peak"]["met"]  # ≥ 50% on S
    assert targets["autodiff"]["value"] == pytest.approx(1.05)
    assert not targets["autodiff"]["met"]
    assert targets["sklearn"]["met"] and not targets["torch"]["met"]


def test_bad_results_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema": "other"}))
    assert run.main(["--from-json", str(path), "--md", str(tmp_path / "B.md")]) == 2


def test_quick_without_md_writes_no_markdown(tmp_path, monkeypatch):
    """JSON goes to --out; no Markdown file is written (nor BENCHMARKS.md in the cwd)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "quick.json"
    argv = ["--quick", "--workloads", "S", "--methods", "jaxbp",
            "--rounds", "1", "--out", str(out)]  # fmt: skip
    assert run.main(argv) == 0
    assert json.loads(out.read_text())["schema"] == run.SCHEMA
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["quick.json"]


def test_from_json_without_md_only_prints(quick_run, tmp_path, monkeypatch, capsys):
    doc, out, _ = quick_run
    monkeypatch.chdir(tmp_path)
    assert run.main(["--from-json", str(out)]) == 0
    assert report.render_markdown(doc, out) in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """--quick, one round: jaxbp, jaxbp-bf16, peak-bf16, and torch-bf16 when torch imports."""
    tmp = tmp_path_factory.mktemp("bench-bf16")
    out, md = tmp / "results.json", tmp / "BENCHMARKS.md"
    methods = ["jaxbp", "jaxbp-bf16", "peak-bf16"] + ["torch-bf16"] * run.torch_available()
    argv = ["--quick", "--workloads", "S", "--methods", *methods,
            "--rounds", "1", "--out", str(out), "--md", str(md)]  # fmt: skip
    assert run.main(argv) == 0
    return json.loads(out.read_text()), md.read_text()


def test_bf16_rows_in_json(bf16_run):
    doc, _ = bf16_run
    torch_rows = ["torch-bf16"] * run.torch_available()
    assert doc["config"]["methods"] == ["jaxbp", "jaxbp-bf16", *torch_rows, "peak-bf16"]
    assert set(doc["config"]["peaks"]) == {"peak", "peak-bf16"}
    entry = doc["workloads"]["S"]
    assert set(entry["methods"]) == {"jaxbp", "jaxbp-bf16", *torch_rows, "peak", "peak-bf16"}
    for record in entry["methods"].values():
        (attempt,) = record["runs"]
        assert "error" not in attempt, attempt
        assert attempt["samples_s"] and all(s > 0 for s in attempt["samples_s"])
    assert entry["methods"]["jaxbp-bf16"]["runs"][0]["matmul_dtype"] == "bfloat16"
    assert entry["methods"]["jaxbp"]["runs"][0]["matmul_dtype"] == "float32"
    assert entry["methods"]["peak-bf16"]["runs"][0]["dtype"] == "bfloat16 -> float32"
    summary = doc["summary"]["S"]
    bf16_peak, f32_peak = summary["peak_bf16"]["gflops"], summary["peak"]["gflops"]
    assert bf16_peak > 0 and f32_peak > 0
    rows = summary["methods"]
    assert "peak-bf16" not in rows
    for method in ("jaxbp-bf16", *torch_rows):  # % of the bf16 peak
        assert rows[method]["peak_ref"] == "peak-bf16"
        assert rows[method]["pct_peak"] == pytest.approx(100 * rows[method]["gflops"] / bf16_peak)
    assert "peak_ref" not in rows["jaxbp"]
    assert rows["jaxbp"]["pct_peak"] == pytest.approx(100 * rows["jaxbp"]["gflops"] / f32_peak)
    assert "jaxbp-bf16" in summary["ratios"]
    if torch_rows:
        assert summary["ratios"]["torch-bf16"]["base"] == "jaxbp-bf16"


def test_bf16_rows_in_markdown(bf16_run):
    _, text = bf16_run
    table = text.split("### S:", 1)[1].split("###", 1)[0]
    rows = {line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")}
    assert "| " + measure.METHODS["jaxbp-bf16"] in rows
    assert "| " + measure.METHODS["jaxbp"] in rows
    assert any(row.startswith("| peak-bf16: ") for row in rows)
    assert any(row.startswith("| peak: ") for row in rows)
    assert "(bf16)" in table and "bf16 / float32 peak" in table
    assert ("| " + measure.METHODS["torch-bf16"] in rows) == run.torch_available()


def test_bf16_peak_runs_with_a_bf16_method_and_torch_is_skipped_without_torch(monkeypatch):
    """peak-bf16 joins any bf16 method; the float32 peak is never listed (it always runs)."""
    kw = dict(rounds=1, quick=True, peak_n=8, budget_s=1.0, slow_epoch_s=60.0, slow_rounds=2,
              noisy_cores=None, retries=0, quiet_wait_s=0.0)  # fmt: skip
    monkeypatch.setattr(run, "machine_info", dict)
    doc = run.new_document(["jaxbp", "jaxbp-bf16", "peak"], **kw)
    assert doc["config"]["methods"] == ["jaxbp", "jaxbp-bf16", "peak-bf16"]
    assert run.new_document(["jaxbp"], **kw)["config"]["methods"] == ["jaxbp"]
    monkeypatch.setattr(run, "torch_available", lambda: False)
    doc = run.new_document(["jaxbp", "torch", "torch-bf16"], **kw)
    assert doc["config"]["methods"] == ["jaxbp"]
    assert set(doc["config"]["skipped"]) == {"torch", "torch-bf16"}


def test_old_results_without_bf16_peak_still_summarize():
    """A document from before the bf16 rows (no peak-bf16, no config peaks) renders as before."""
    flops = measure.WORKLOADS["S"].flops
    rec = {"runs": [{"round": 0, "samples_s": [flops / 50e9]}], "discarded": [], "notes": []}
    peak = {"runs": [{"round": 0, "samples_s": [2 * 2048**3 / 100e9]}], "discarded": [],
            "notes": []}  # fmt: skip
    methods = {"jaxbp": rec, "jaxbp-bf16": rec, "peak": peak}
    doc = {"config": {"peak_size": 2048}, "workloads": {"S": {"spec": {"flops": flops},
                                                              "methods": methods}}}  # fmt: skip
    summary = report.summarize(doc)["S"]
    assert "peak_bf16" not in summary
    assert summary["methods"]["jaxbp"]["pct_peak"] == pytest.approx(50)
    assert summary["methods"]["jaxbp-bf16"]["pct_peak"] is None  # no bf16 peak measured
