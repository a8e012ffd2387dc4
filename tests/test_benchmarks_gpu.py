"""benchmarks/gpu.py in its tiny mode: the same code, on the CPU, in seconds."""

import json

from benchmarks import gpu


def test_tiny_mode_runs_and_writes_json_and_markdown(tmp_path, monkeypatch):
    made = []
    original = gpu.time_size
    monkeypatch.setattr(gpu, "time_size", lambda name, *a: made.append(name) or original(name, *a))
    assert gpu.main(["--sizes", "tiny", "--repeats", "1", "--out", str(tmp_path)]) == 0
    assert made == ["tiny"]  # no M, L′ or XL data on the CPU
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["gradcheck"]["ok"]
    assert {r["variant"] for r in result["epochs"]} == set(gpu.VARIANTS)
    assert all(r["epoch_s"] > 0 for r in result["epochs"])
    assert "% of peak" in (tmp_path / "gpu.md").read_text()
