"""The import structure: no circles between the library's modules.

Each module is imported alone in a fresh interpreter; the modules it must not pull in
(those that import it) must stay out of ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# module: modules that import it, so it must not import them (directly or not).
MUST_NOT_IMPORT = {
    "jaxbp.validate": ["jaxbp.model", "jaxbp.params", "jaxbp.train"],
    "jaxbp.params": ["jaxbp.model", "jaxbp.train"],
    "jaxbp.model": ["jaxbp.train", "jaxbp.cli"],
    "jaxbp.epoch": ["jaxbp.train", "jaxbp.cli"],
}


@pytest.mark.parametrize("module", sorted(MUST_NOT_IMPORT))
def test_module_does_not_import_its_importers(module):
    code = (
        f"import sys, {module}\n"
        f"print(sorted(m for m in {MUST_NOT_IMPORT[module]!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"{module} imports {proc.stdout.strip()}"


def test_check_net_needs_no_model_import():
    """validate.check_net refuses a non-Net without importing jaxbp.model."""
    code = (
        "import sys\n"
        "from jaxbp import validate\n"
        "try:\n"
        "    validate.check_net('relu')\n"
        "except TypeError as e:\n"
        "    print('refused', 'jaxbp.model' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "refused False", proc.stdout + proc.stderr
