"""The command's first result comes fast: the names agree with the registries, and
``--help`` and argument errors do not import JAX."""

import subprocess
import sys
from pathlib import Path

import pytest

from jaxbp import activations, data, gradients, heads, names, optimizers
from jaxbp.cli import compilation_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def test_names_agree_with_the_registries():
    assert names.ACTIVATIONS == activations.NAMES
    for name in names.ACTIVATIONS:
        assert activations.get(name).name == name
    assert names.HEADS == heads.NAMES
    for name in names.HEADS:
        assert heads.get(name) is not None
    assert names.OPTIMIZERS == optimizers.OPTIMIZERS
    for name in names.OPTIMIZERS:
        optimizers.make(name, 0.1)
    assert names.SCHEDULES == optimizers.SCHEDULES
    for name in names.SCHEDULES:
        optimizers.schedule(name, 0.1, steps_per_epoch=2, epochs=3)
    assert names.GRADIENT_METHODS == gradients.METHODS
    assert names.DATA == data.NAMES
    assert names.SYNTHETIC_DATA == data.SYNTHETIC


def _modules_after(args):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['jaxbp', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('jaxbp.cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print(code, *sorted(m for m in ('jax', 'optax', 'sklearn', 'matplotlib',"
        " 'jaxbp.distributed')"
        " if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return done.stderr.strip().splitlines()[-1].split()


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], "0"),
        (["train", "--help"], "0"),
        (["train", "--activation", "nope"], "2"),
        (["train", "--epochs", "0"], "2"),
    ],
)
def test_help_and_argument_errors_do_not_import_jax(args, code):
    assert _modules_after(args) == [code]


def test_default_train_does_not_import_scikit_learn(tmp_path):
    """The digits ship with jaxbp and the confusion matrix is counted with NumPy."""
    modules = _modules_after(["train", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")])
    assert modules[0] == "0" and "jax" in modules and "matplotlib" in modules
    assert "sklearn" not in modules
    assert "jaxbp.distributed" not in modules  # only multi-process runs start the runtime


def test_python_m_jaxbp_cli_help_does_not_import_jax():
    code = (
        "import subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'jaxbp.cli', '--help'],"
        " capture_output=True, text=True)\n"
        "assert done.returncode == 0, done.stderr\n"
        "assert 'usage: jaxbp' in done.stdout\n"
        "imported = [line.split('|')[-1].strip() for line in done.stderr.splitlines()]\n"
        "print(' '.join(m for m in imported if m.split('.')[0] in ('jax', 'jaxlib', 'optax')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_compilation_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXBP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir() == tmp_path / "jaxbp" / "jax"
    monkeypatch.setenv("JAXBP_CACHE_DIR", str(tmp_path / "c"))
    assert compilation_cache_dir() == tmp_path / "c"
    for off in ("", "0", "off"):
        monkeypatch.setenv("JAXBP_CACHE_DIR", off)
        assert compilation_cache_dir() is None


def test_importing_jaxbp_leaves_the_jax_cache_alone():
    code = "import jax, jaxbp; jaxbp.fit; print(jax.config.jax_compilation_cache_dir)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if not k.startswith("JAX_COMP")},
    )  # fmt: skip
    assert done.stdout.strip() in ("None", "")
