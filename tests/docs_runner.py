"""Run the code blocks of the Markdown pages (README.md, docs/**/*.md) as a reader would.

The rules (also in CONTRIBUTING.md, "Documentation"):

- A ```python block runs as pasted, in a fresh interpreter. If it holds ``>>>`` lines it
  runs as a doctest (ELLIPSIS, NORMALIZE_WHITESPACE). Otherwise, if the next block is a
  ```text block (only blank lines between), that block is the expected standard output,
  compared like a doctest's (``...`` matches anything, whitespace runs are equal).
- In ```console blocks every line starting ``$ jaxbp`` (or ``$ python -m jaxbp``) runs,
  with bash (``\\`` continues a line; leading ``VAR=value`` words, pipes and
  redirections work); in ```bash / ```sh / ```shell blocks every such line with or
  without the ``$``. Other shell lines (pip, pytest, python scripts) are not run.
  Output shown under a command is illustrative and not checked (epochs are shrunk,
  timings vary). ``jaxbp`` is ``python -m jaxbp.cli`` of this checkout, ``--epochs N``
  is shrunk to ``shrink_epochs(N)`` (about √N, order kept, so a resume to a larger N
  still continues) and ``jaxbp experiment`` gets ``--quick``.
- All blocks of one page run in order in one fresh temporary folder (like a reader's
  terminal following the page), into which the sample files of ``docs/examples/`` are
  copied first; each Python block is still a fresh interpreter.
- A block preceded by the line ``<!-- no-run -->`` is not run; the tests report each one
  as a skipped test, so they are counted.
"""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
NO_RUN = "<!-- no-run -->"
SHELLS = {"console", "bash", "sh", "shell"}
PY_TIMEOUT_S = 180
CMD_TIMEOUT_S = 300
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^`]*$")
# A jaxbp command line: optional VAR=value words, then `jaxbp` or `python -m jaxbp[.cli]`.
_COMMAND = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s+)*(?:jaxbp|python3? -m jaxbp(?:\.cli)?)(?:\s|$)")
_EPOCHS = re.compile(r"(--epochs[= ])(\d+)\b")
_EXPERIMENT = re.compile(r"\b(jaxbp(?:\.cli)? experiment)\b")
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclasses.dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    no_run: bool = False
    expected: str | None = None  # a following ```text block, for python blocks
    end: int = 0  # index of the line after the closing fence

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/, sorted."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, with their no-run marks and expected outputs."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i, last_text = 0, ""
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                last_text = lines[i].strip()
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        body, j = [], i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence)) and lines[j].strip(fence[0]) == ""
        ):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        code = "\n".join(body) + "\n"
        found.append(Block(page, i + 1, lang, code, last_text == NO_RUN, end=j + 1))
        # The block right after (blank lines only) may be a python block's expected output.
        last_text, i = "", j + 1
    for prev, nxt in itertools.pairwise(found):
        between = lines[prev.end : nxt.line - 1]
        if prev.lang == "python" and nxt.lang == "text" and not any(s.strip() for s in between):
            prev.expected = nxt.code
    return found


# ---------------------------------------------------------------------------
# Shell commands


def shrink_epochs(n: int) -> int:
    """Epochs for a documented ``--epochs n``: about √n, at least 1, never more than n."""
    return max(1, min(n, round(math.sqrt(n))))


def commands(block: Block) -> list[str]:
    """The jaxbp command lines of a shell block, continuation lines joined."""
    raw, joined = block.code.splitlines(), []
    buf = ""
    for line in raw:
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    out = []
    for line in joined:
        s = line.strip()
        if block.lang == "console":
            if not s.startswith("$ "):
                continue  # shown output
            s = s[2:].strip()
        elif s.startswith("$ "):
            s = s[2:].strip()
        if _COMMAND.match(s):
            out.append(s)
    return out


def shell_line(command: str) -> str:
    """A documented command line as the tests run it: ``--epochs N`` shrunk,
    ``jaxbp experiment`` given ``--quick``."""
    line = _EPOCHS.sub(lambda m: m.group(1) + str(shrink_epochs(int(m.group(2)))), command)
    if "--quick" not in line:
        line = _EXPERIMENT.sub(r"\1 --quick", line, count=1)
    return line


def shim(folder: Path) -> Path:
    """A folder for the front of PATH in which ``jaxbp`` is ``python -m jaxbp.cli`` of this
    checkout and ``python`` is this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "jaxbp"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m jaxbp.cli "$@"\n')
    script.chmod(0o755)
    for name in ("python", "python3"):
        link = folder / name
        if not link.exists():
            link.symlink_to(sys.executable)
    return folder


# ---------------------------------------------------------------------------
# Running


def environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["MPLBACKEND"] = "Agg"
    # One compilation cache for the commands (JAXBP_CACHE_DIR) and the Python blocks (JAX's
    # own variables): a program compiled once is loaded from disk by later blocks.
    env["JAXBP_CACHE_DIR"] = str(cache)
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env.pop("XLA_FLAGS", None)
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


def _tail(text: str, n: int = 2500) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def run_python(block: Block, cwd: Path, env: dict[str, str]) -> str | None:
    """Run a python block; None if it ran as documented, else what went wrong."""
    if ">>>" in block.code:
        script = (
            "import doctest, sys\n"
            f"text = {block.code!r}\n"
            "test = doctest.DocTestParser().get_doctest(text, {}, 'block', 'block', 0)\n"
            f"runner = doctest.DocTestRunner(optionflags={_FLAGS})\n"
            "runner.run(test)\n"
            "sys.exit(1 if runner.failures else 0)\n"
        )
    else:
        script = block.code
    path = cwd / "_snippet.py"
    path.write_text(script, encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, str(path)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=PY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"{block.where}: python block ran past {PY_TIMEOUT_S} s"
    finally:
        path.unlink(missing_ok=True)
    if proc.returncode != 0:
        output = _tail(proc.stdout + proc.stderr)
        return f"{block.where}: python block exited {proc.returncode}\n{output}"
    if block.expected is not None and not _CHECKER.check_output(
        block.expected, proc.stdout, _FLAGS
    ):
        return (
            f"{block.where}: printed output differs from the ```text block after it\n"
            f"expected:\n{block.expected}got:\n{proc.stdout}"
        )
    return None


def run_command(block: Block, command: str, cwd: Path, env: dict[str, str]) -> str | None:
    """Run one documented command line with bash (pipes and redirections work)."""
    line = shell_line(command)
    try:
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"{block.where}: `{command}` ran past {CMD_TIMEOUT_S} s"
    if proc.returncode != 0:
        return (
            f"{block.where}: `{command}` (run as `{line}`) exited "
            f"{proc.returncode}\n{_tail(proc.stdout + proc.stderr)}"
        )
    return None


def run_page(page: Path, cache: Path | None = None) -> tuple[list[str], int]:
    """Run every block of ``page`` in order. Returns (failures, number of things run).

    ``cache``: the JAX compilation cache folder for the page's commands (pages may share
    one, so that a program compiled for one page is reused by the next); by default a
    fresh one.
    """
    failures, ran = [], 0
    with tempfile.TemporaryDirectory(prefix="jaxbp-docs-") as tmp:
        cwd, cache = Path(tmp) / "work", cache or Path(tmp) / "cache"
        if EXAMPLES.is_dir():
            shutil.copytree(EXAMPLES, cwd)
        else:
            cwd.mkdir()
        env = environment(cache)
        env["PATH"] = f"{shim(Path(tmp) / 'bin')}{os.pathsep}{env.get('PATH', '')}"
        for block in blocks(page):
            if block.no_run:
                continue
            if block.lang == "python":
                ran += 1
                problem = run_python(block, cwd, env)
                if problem:
                    failures.append(problem)
            elif block.lang in SHELLS:
                for command in commands(block):
                    ran += 1
                    problem = run_command(block, command, cwd, env)
                    if problem:
                        failures.append(problem)
    return failures, ran
