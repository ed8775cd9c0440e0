"""Fixtures for the interop tests (run by .ci/interop.sh)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import Sandbox  # noqa: E402


@pytest.fixture
def sandbox_factory(tmp_path: Path):
    started: list[Sandbox] = []

    def start(**kwargs) -> Sandbox:
        sb = Sandbox(tmp_path / f"sandbox-{len(started)}", **kwargs)
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.close()


@pytest.fixture
def sandbox(sandbox_factory) -> Sandbox:
    return sandbox_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a failed one here: whatever it needed is missing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which the interop suite treats as a failure: {report.longrepr}"
