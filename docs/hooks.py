"""MkDocs hook: render the generated sections of the pages from benchmarks/results/*.json.

A line ``<!-- generated: NAME -->`` in a page is replaced, at build time, by section NAME
of ``benchmarks.report.SECTIONS`` (workloads, epoch, norms, bf16, many, startup,
memory, distributed, headlines) or ``EXPERIMENT_SECTIONS`` (experiment-times, bp-cost,
from docs/experiments/*/results.json). The numbers are never copied by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_MARK = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- generated:" not in markdown:
        return markdown
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import report

    def render(m: re.Match) -> str:
        name = m.group(1)
        if name not in report.SECTIONS and name not in report.EXPERIMENT_SECTIONS:
            raise ValueError(f"{page.file.src_path}: unknown generated section {name!r}")
        text = report.render_section(name)
        # One level deeper than the page title: ## becomes ###.
        return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)

    return _MARK.sub(render, markdown)
