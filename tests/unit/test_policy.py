"""The test policy of tests/conftest.py, held by running pytest with it as a non-root uid (65534,
through setpriv): a root test fails under KPY_STRICT=1, without running, and skips without it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import need_tool

pytestmark = [pytest.mark.root]  # to change uid

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = '''
import pytest

@pytest.fixture
def root_fixture():
    print("FIXTURE-RAN")
    yield

@pytest.mark.root
def test_needs_root(root_fixture):
    print("BODY-RAN")

def test_plain():
    pass
'''


def _pytest_as_nobody(tmp_path, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    root: needs root\naddopts = -ra --strict-markers\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPY_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = TOP  # for -p tests.conftest: the policy as this tree has it
    if strict:
        env["KPY_STRICT"] = "1"
    # uid 65534 with no groups; CAP_DAC_READ_SEARCH only so that it can read this tree, the
    # interpreter (which may live under /root) and tmp_path, as a non-root CI user could
    argv = [need_tool("setpriv"), "--reuid", "65534", "--regid", "65534", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
            sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-p", "tests.conftest",
            "test_probe.py"]
    p = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    return p


def test_strict_without_root_fails_each_root_test_without_running_it(tmp_path):
    p = _pytest_as_nobody(tmp_path, strict=True)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "FAILED test_probe.py::test_needs_root" in out, out
    assert "KPY_STRICT=1: needs root, and this runs as uid 65534" in out, out
    assert "xfail" not in out and "ERROR" not in out, out
    assert "FIXTURE-RAN" not in out and "BODY-RAN" not in out, out


def test_without_strict_a_root_test_skips_with_the_reason(tmp_path):
    p = _pytest_as_nobody(tmp_path, strict=False)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert "SKIPPED [1] test_probe.py:9: needs root" in out, out
    assert "FIXTURE-RAN" not in out and "BODY-RAN" not in out, out
