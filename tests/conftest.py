"""Shared pytest configuration: the ``--slow`` option and the hypothesis profiles.

- ``slow`` tests (marker declared in ``pyproject.toml``) are skipped unless ``--slow``.
- Hypothesis runs the ``default`` profile (few, derandomized examples, so that CI is
  deterministic and fast) or, with ``--slow``, the ``slow`` profile (300 examples).

64-bit tests switch float64 on locally with ``with jax.enable_x64(True):``; nothing
here changes JAX's global configuration.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# The CLI's persistent compilation cache stays off in tests (and in their subprocesses):
# no writes to the user's cache folder, no global JAX config change mid-suite.
os.environ.setdefault("JAXBP_CACHE_DIR", "off")

_COMMON = dict(
    deadline=None,  # first calls compile: timings are not meaningful
    derandomize=True,  # the same examples on every run
    database=None,  # nothing to replay when derandomized; writes no .hypothesis/
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("default", max_examples=25, **_COMMON)
settings.register_profile("slow", max_examples=300, **_COMMON)


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run tests marked slow, and hypothesis with the 'slow' profile (300 examples)",
    )


def pytest_configure(config):
    settings.load_profile("slow" if config.getoption("--slow") else "default")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
