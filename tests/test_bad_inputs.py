"""The battery of bad API inputs (``scripts/bad_inputs.py``): every one is a clear error.

A clear error is a ``ValueError`` or ``TypeError`` raised before anything runs, whose
message names the argument; never an ``IndexError``/``AttributeError``/``ZeroDivisionError``
from inside, and never a silent answer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bad_inputs.py"


@pytest.fixture(scope="module")
def battery():
    spec = importlib.util.spec_from_file_location("bad_inputs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_battery_is_large_and_named_uniquely(battery):
    cases = battery.cases()
    assert len(cases) >= 80
    names = [c.name for c in cases]
    assert len(set(names)) == len(names)


def test_every_bad_input_is_a_clear_error(battery):
    outcomes = battery.run()
    unclear = [o for o in outcomes if not o.clear]
    assert not unclear, "\n" + battery.report(unclear)


def test_the_battery_catches_a_silent_answer_and_a_wrong_error(battery):
    def silent():
        return 1

    def wrong_type():
        raise IndexError("x out of range")

    def unnamed():
        raise ValueError("something is wrong")

    cases = [
        battery.Case("silent", silent, (ValueError,), "x"),
        battery.Case("wrong type", wrong_type, (ValueError,), "x"),
        battery.Case("unnamed", unnamed, (ValueError,), "x"),
        battery.Case(
            "named inside a word only",
            lambda: (_ for _ in ()).throw(ValueError("xs must be ...")),
            (ValueError,),
            "x",
        ),
    ]
    assert [o.clear for o in battery.run(cases)] == [False] * 4
    assert "anything else 4" in battery.report(battery.run(cases))


CLI_SCRIPT = SCRIPT.parent / "bad_cli_inputs.py"


def test_every_bad_command_line_and_damaged_run_folder_is_a_clear_error(tmp_path):
    spec = importlib.util.spec_from_file_location("bad_cli_inputs", CLI_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.battery(tmp_path, flips=12)
    assert not jax.config.jax_enable_x64  # a run's --x64 does not leak out of main()
    assert len(results) >= 180  # 100 from round two, 80+ run-folder attacks (issue 14)
    ok = {"clear error", "correct result"}
    unclear = [r for r in results if r[1] not in ok]
    assert not unclear, unclear
