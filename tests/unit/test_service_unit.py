"""The systemd unit install-service writes (kubelet_py.service.unit), checked as text and by
`systemd-analyze verify`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kubelet_py.service.unit import UNIT_NAME, UnitError, quote_arg, render_unit
from tests.conftest import need_tool


def _service_section(text: str) -> dict:
    out, section = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def test_the_unit_keeps_pods_through_a_daemon_restart():
    s = _service_section(render_unit(["/usr/local/bin/kubelet-py", "serve"]))
    assert s["Type"] == "notify"
    assert s["KillMode"] == "process"  # stop/restart signal the daemon only, never supervisors or pods
    assert s["Delegate"] == "yes"
    assert s["Restart"] == "always"
    assert s["ExecStart"] == "/usr/local/bin/kubelet-py serve"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "WatchdogSec" not in s


def test_watchdog_is_optional():
    assert _service_section(render_unit(["/bin/k", "serve"], watchdog_sec=30))["WatchdogSec"] == "30"
    with pytest.raises(UnitError):
        render_unit(["/bin/k"], watchdog_sec=0)


@pytest.mark.parametrize("arg,word", [("/var/lib/kubelet-py", "/var/lib/kubelet-py"), ("a b", '"a b"'),
                                      ("50%", "50%%"), ("$HOME", '"$$HOME"'), ('say "hi"', '"say \\"hi\\""'),
                                      ("", '""'), ("back\\slash", '"back\\\\slash"')])
def test_exec_start_words_are_quoted_for_systemd(arg, word):
    assert quote_arg(arg) == word


def test_bad_exec_start():
    with pytest.raises(UnitError):
        render_unit(["kubelet-py", "serve"])  # relative
    with pytest.raises(UnitError):
        quote_arg("a\nb")


def test_systemd_analyze_verifies_the_rendered_unit(tmp_path):
    tool = need_tool("systemd-analyze")
    script = os.path.join(os.path.dirname(sys.executable), "kubelet-py")
    assert os.access(script, os.X_OK), f"{script}: the console script (pip install -e .)"
    path = tmp_path / UNIT_NAME
    path.write_text(render_unit([script, "--root", "/var/lib/kubelet py", "serve", "--config", "/etc/k/c.yaml"],
                                watchdog_sec=20))
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "kubelet-py.service" not in p.stderr, p.stderr  # no warning about our unit
    # and it does fail on a unit it cannot run
    path.write_text(render_unit(["/nonexistent/kubelet-py", "serve"]))
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "/nonexistent/kubelet-py" in p.stderr
