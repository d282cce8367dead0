"""The console script's start and end (kubelet_py/entry.py): which commands leave through
os._exit, and that their output and exit code survive it."""

from __future__ import annotations

import os
import subprocess
import sys

from kubelet_py.entry import forks_containers, plain_client

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_which_commands_are_plain_client_commands():
    assert plain_client(["get", "pods"]) and plain_client(["--socket", "/s", "delete", "pod", "a"])
    assert plain_client(["--max-layer-size", "1Gi", "--root", "/r", "apply", "-f", "x"])
    assert plain_client(["create", "configmap", "c"]) and plain_client(["wait", "pod/x", "--for=delete"])
    for argv in (["serve"], ["run", "-f", "x"], ["exec", "p", "--", "sh"], ["runtime", "run"], ["image", "ls"],
                 [], ["--socket"], ["--help"]):
        assert not plain_client(argv), argv
    assert forks_containers(["--max-image-size", "1Gi", "demo"])  # a valued limit option is skipped whole


def _script(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from kubelet_py.entry import main; main()", *args],
                          capture_output=True, text=True, cwd=TOP, timeout=60, **kw)


def test_output_and_exit_code_survive_the_quick_exit(tmp_path):
    p = _script("wait", "--help")  # stdout is a pipe: block-buffered until the flush before os._exit
    assert p.returncode == 0 and p.stdout.startswith("Usage: kubelet-py wait"), (p.stdout, p.stderr)
    p = _script("--socket", str(tmp_path / "none.sock"), "get", "pods")
    assert p.returncode == 1 and p.stderr.startswith("kubelet-py: error: no daemon at"), p.stderr
    p = _script("get")  # a usage error: click's exit code 2
    assert p.returncode == 2 and "Missing argument" in p.stderr
