"""Run the code blocks of the Markdown pages (README.md, docs/**/*.md) as a reader would.

The rules (also in CONTRIBUTING.md, "Documentation"):

- A ```python block runs as pasted, in a fresh interpreter. If it holds ``>>>`` lines it
  runs as a doctest (ELLIPSIS, NORMALIZE_WHITESPACE). Otherwise, if the next block is a
  ```text block (only blank lines between), that block is the expected standard output,
  compared like a doctest's (``...`` matches anything, whitespace runs are equal).
- In ```console blocks every line starting ``$ jaxbp`` runs (``\\`` continues a line;
  ``# comments`` are dropped; leading ``VAR=value`` words are set in the environment);
  in ```bash / ```sh / ```shell blocks every line starting ``jaxbp`` or ``$ jaxbp`` does.
  Other shell lines (pip, pytest, python scripts) are not run. Output shown under a
  command is illustrative and not checked (epochs are shrunk, timings vary).
  Commands run as ``python -m jaxbp.cli ...`` with ``--epochs N`` shrunk to
  ``shrink_epochs(N)`` (about √N, order kept, so a resume to a larger N still continues)
  and ``jaxbp experiment`` given ``--quick``.
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
import shlex
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
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
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
        words = shlex.split(s, comments=True)
        k = 0
        while k < len(words) and _ASSIGN.match(words[k]):
            k += 1
        if k < len(words) and words[k] == "jaxbp":
            out.append(s)
    return out


def argv_of(command: str) -> tuple[dict[str, str], list[str]]:
    """(environment additions, argv) to run a documented ``jaxbp ...`` line here."""
    words = shlex.split(command, comments=True)
    env = {}
    while _ASSIGN.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    args = words[1:]
    for k, word in enumerate(args):
        if word == "--epochs" and k + 1 < len(args) and args[k + 1].isdigit():
            args[k + 1] = str(shrink_epochs(int(args[k + 1])))
        elif word.startswith("--epochs=") and word.split("=", 1)[1].isdigit():
            args[k] = f"--epochs={shrink_epochs(int(word.split('=', 1)[1]))}"
    if args[:1] == ["experiment"] and "--quick" not in args:
        args.append("--quick")
    return env, [sys.executable, "-m", "jaxbp.cli", *args]


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
    extra, argv = argv_of(command)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"{block.where}: `{command}` ran past {CMD_TIMEOUT_S} s"
    if proc.returncode != 0:
        return (
            f"{block.where}: `{command}` (run as {' '.join(argv[1:])}) exited "
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
