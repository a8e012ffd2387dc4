"""The documentation runs: every snippet of README.md and docs/**/*.md, and the site build.

The rules for snippets are in ``tests/docs_runner.py`` and CONTRIBUTING.md. Pages are
found by glob, so a page added later is run too. Pages run in parallel (each in its own
temporary folder); a block marked ``<!-- no-run -->`` is reported as a skipped test.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import docs_runner as dr
import pytest

PAGES = dr.pages()
_PAGE_IDS = [str(p.relative_to(dr.ROOT)) for p in PAGES]
NO_RUN_BLOCKS = [b for p in PAGES for b in dr.blocks(p) if b.no_run]


@pytest.fixture(scope="module")
def page_results(tmp_path_factory) -> dict[Path, tuple[list[str], int]]:
    """Every page run once, a few pages at a time, sharing one compilation cache."""
    cache = tmp_path_factory.mktemp("jax-cache")
    workers = max(1, min(4, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda page: dr.run_page(page, cache), PAGES)
        return dict(zip(PAGES, results, strict=True))


@pytest.mark.parametrize("page", PAGES, ids=_PAGE_IDS)
def test_page_snippets_run(page, page_results):
    failures, _ = page_results[page]
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("block", NO_RUN_BLOCKS, ids=[b.where for b in NO_RUN_BLOCKS])
def test_no_run_block(block):
    """Each block marked not to run is counted and reported (as a skip, with -ra)."""
    pytest.skip(f"no-run block at {block.where} ({block.lang})")


def test_no_run_marks_precede_a_block():
    """A `<!-- no-run -->` line that is not right before a code block would mark nothing."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        marked = {b.line for b in dr.blocks(page) if b.no_run}
        for i, line in enumerate(lines):
            if line.strip() == dr.NO_RUN:
                nxt = next((k for k in range(i + 1, len(lines)) if lines[k].strip()), None)
                assert nxt is not None and nxt + 1 in marked, (
                    f"{page.relative_to(dr.ROOT)}:{i + 1}: {dr.NO_RUN} is not followed by a "
                    "code block"
                )


def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or a bad docstring fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=dr.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "api" / "index.html").is_file()
    for page in ("performance", "experiments"):  # tables rendered from result files
        html = (tmp_path / page / "index.html").read_text(encoding="utf-8")
        assert "<table>" in html and "generated:" not in html, page


# ---------------------------------------------------------------------------
# The runner itself: it must be able to fail.


@pytest.fixture
def scratch_page(tmp_path):
    def make(text: str) -> Path:
        page = tmp_path / "page.md"
        page.write_text(text, encoding="utf-8")
        return page

    return make


def test_runner_catches_failures(scratch_page):
    page = scratch_page(
        "```python\nprint(undefined_name)\n```\n\n"
        "```python\nprint(1 + 1)\n```\n\n```text\n3\n```\n\n"
        "```pycon\nignored\n```\n\n"
        "```python\n>>> 2 * 2\n5\n```\n\n"
        "<!-- no-run -->\n```python\nraise SystemExit(1)\n```\n\n"
        "```console\n$ jaxbp train --no-such-flag\nshown output\n$ pip install nothing\n```\n"
    )
    failures, ran = dr.run_page(page)
    assert ran == 4
    assert len(failures) == 4, failures
    assert "NameError" in failures[0]
    assert "differs" in failures[1]
    assert "exited 1" in failures[2]
    assert "--no-such-flag" in failures[3] and "exited 2" in failures[3]


def test_runner_passes_and_shrinks(scratch_page):
    page = scratch_page(
        "```python\nprint('a   b')\nprint(list(range(20)))\n```\n\n"
        "```text\na b\n[0, 1, ...]\n```\n\n"
        "```bash\njaxbp --version   # a comment\n```\n\n"
        "```console\n$ XLA_FLAGS= python -m jaxbp.cli --help | head -n 1 > out.txt\n"
        "$ jaxbp --version && test -s out.txt\n```\n"
    )
    assert dr.run_page(page) == ([], 4)
    assert dr.shell_line("jaxbp train --epochs 500 --data sine") == (
        "jaxbp train --epochs 22 --data sine"
    )
    assert [dr.shrink_epochs(n) for n in (1, 5, 10, 60, 80)] == [1, 2, 3, 8, 9]
    assert dr.shell_line("X=1 jaxbp experiment all --epochs=4") == (
        "X=1 jaxbp experiment --quick all --epochs=2"
    )


# ---------------------------------------------------------------------------
# One source for every number, and the README as a map.


def test_generated_benchmark_pages_are_current():
    """BENCHMARKS.md and the README's headline block are what benchmarks/report.py renders
    from benchmarks/results/*.json: rerun `python benchmarks/report.py --md BENCHMARKS.md
    --readme README.md` after adding a result."""
    from benchmarks import report

    assert (dr.ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") == report.benchmarks_md()
    readme = (dr.ROOT / "README.md").read_text(encoding="utf-8")
    assert report.replace_block(readme, "headlines", report.headlines()) == readme


def test_readme_is_a_map():
    readme = (dr.ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 120
    for page in ("runs", "cli", "experiments", "scale", "sklearn", "playground",
                 "performance", "testing", "api"):  # fmt: skip
        assert f"(docs/{page}.md)" in readme, page


def test_ci_runs_the_readme_test_command():
    command = 'python -m pip install -e ".[test]" && python -m pytest -q'
    readme = (dr.ROOT / "README.md").read_text(encoding="utf-8")
    ci = (dr.ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert f"$ {command}" in readme
    assert ci[-1] == command


def test_api_reference_lists_every_public_name():
    """docs/api.md has a `::: jaxbp.MODULE.NAME` entry for every name in `jaxbp.__all__`."""
    import jaxbp

    api = (dr.ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [
        f"::: jaxbp.{jaxbp._MODULE_OF[name]}.{name}"
        for name in jaxbp.__all__
        if f"::: jaxbp.{jaxbp._MODULE_OF[name]}.{name}\n" not in api
    ]
    assert not missing, "add to docs/api.md: " + ", ".join(missing)


def test_python_m_jaxbp_is_the_command():
    """`python -m jaxbp` (what CONTRIBUTING and the docs may show) runs the jaxbp command."""
    proc = subprocess.run(
        [sys.executable, "-m", "jaxbp", "--version"],
        cwd=dr.ROOT,
        env=dr.environment(Path("off")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("jaxbp "), proc.stderr
