"""Test policy.

`@pytest.mark.root` tests need root and the real kernel. Without root they skip with the reason;
with KPY_STRICT=1 (set by scripts/test when run as root, hence in CI) any skip is a failure, as
is a missing tool (`need_tool`), so CI can never pass by skipping."""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = os.environ.get("KPY_STRICT") == "1"


def need_tool(name: str) -> str:
    """Path of a required program; skips (or fails under KPY_STRICT) if it is missing."""
    path = shutil.which(name)
    if path is None:
        msg = f"required tool {name!r} is not installed (scripts/test installs it)"
        if STRICT:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    for item in items:
        if item.get_closest_marker("root"):
            if STRICT:
                item.add_marker(pytest.mark.xfail(reason="KPY_STRICT: needs root", strict=True, run=False))
            else:
                item.add_marker(pytest.mark.skip(reason="needs root (run as root, or scripts/test)"))


def pytest_runtest_logreport(report):
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"KPY_STRICT=1: a skip is a failure here: {report.longrepr}"


@pytest.fixture
def tmp_root(tmp_path):
    """A private --root for one test."""
    d = tmp_path / "root"
    d.mkdir()
    return str(d)
