"""Test policy.

`@pytest.mark.root` tests need root and the real kernel. Without root they skip with the reason;
with KPY_STRICT=1 (set by scripts/test when run as root, hence in CI) any skip is a failure, as
is a missing tool (`need_tool`), so CI can never pass by skipping. A root test under KPY_STRICT=1
without root fails in its setup, before any fixture runs, and is reported FAILED with the reason
(tests/unit/test_policy.py runs pytest as uid 65534 to hold this)."""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = os.environ.get("KPY_STRICT") == "1"
IN_VM = os.environ.get("KPY_IN_VM") == "1"


def host_is_cgroup2() -> bool:
    """A unified hierarchy at /sys/fs/cgroup with controllers (this project's VMs, Ubuntu 24.04),
    as opposed to v1 or a hybrid layout whose cgroup2 mount has none."""
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return bool(f.read().split())
    except OSError:
        return False


def need_tool(name: str) -> str:
    """Path of a required program; skips (or fails under KPY_STRICT) if it is missing."""
    path = shutil.which(name)
    if path is None:
        msg = f"required tool {name!r} is not installed (scripts/test installs it)"
        if STRICT:
            pytest.fail(msg)
        pytest.skip(msg)  # by hand only (not root, or no KPY_STRICT): CI fails above instead
    return path


def pytest_collection_modifyitems(config, items):
    if not host_is_cgroup2():
        # not a skip: these run in the VM group that scripts/test (and CI) runs after this suite
        v2_only = [i for i in items if i.get_closest_marker("cgroup2")]
        if v2_only:
            config.hook.pytest_deselected(items=v2_only)
            items[:] = [i for i in items if not i.get_closest_marker("cgroup2")]
            config._kpy_vm_note = f"{len(v2_only)} cgroup2 tests deselected here: they run in the VM (python -m tests.vm)"
    if os.geteuid() == 0 or STRICT:
        return  # STRICT without root: pytest_runtest_setup fails each root test
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root (run as root, or scripts/test)"))


NEEDS_ROOT = "KPY_STRICT=1: needs root"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """First of the setup hooks, so no fixture of a root test runs without root."""
    if STRICT and item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.fail(f"{NEEDS_ROOT}, and this runs as uid {os.geteuid()} (a root test may not pass "
                    "without running)", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "setup" and rep.failed and str(rep.longrepr).startswith(NEEDS_ROOT):
        rep.kpy_needs_root = True
    # here, as the report is made, not in pytest_runtest_logreport: the terminal reporter had
    # already filed it as skipped there, and its summary of skips then crashed on the failure's
    # text (INTERNALERROR in _folded_skips, with no counts line)
    if STRICT and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"KPY_STRICT=1: a skip is a failure here: {rep.longrepr}"


def pytest_report_teststatus(report, config):
    if getattr(report, "kpy_needs_root", False):
        return "failed", "F", "FAILED"  # not an ERROR: the test itself cannot pass here


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    note = getattr(config, "_kpy_vm_note", None)
    if note:
        terminalreporter.write_line(note)


@pytest.fixture
def tmp_root(tmp_path):
    """A private --root for one test."""
    d = tmp_path / "root"
    d.mkdir()
    return str(d)
