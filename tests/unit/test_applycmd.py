"""The quick `apply -f` path (kubelet_py/applycmd.py): which command lines it takes (the rest
goes to click), and the files it reads."""

from __future__ import annotations

import pytest

from kubelet_py.applycmd import DEFAULT_SOCKET, MissingPath, parse_plain, read_files
from kubelet_py.errtext import os_error_message, server_message


@pytest.mark.parametrize("argv,want", [
    (["apply", "-f", "x"], (DEFAULT_SOCKET, ["x"], False, False)),
    (["--socket", "/s", "apply", "-f", "x", "--filename=y", "-R", "--strict"], ("/s", ["x", "y"], True, True)),
    (["--root", "/r", "--socket=/s", "--cgroup-root", "c", "apply", "--filename", "z"], ("/s", ["z"], False, False)),
    (["--root", "apply", "-f", "x"], None),          # "apply" is --root's value, as click reads it
    (["apply"], None), (["apply", "-f"], None), (["apply", "-h"], None), (["apply", "-f", "x", "--help"], None),
    (["apply", "-f", "x", "--dry-run"], None), (["apply", "--filename="], None),
    (["--max-layer-size", "1Gi", "apply", "-f", "x"], None),   # typed: click validates it
    (["--socket"], None), (["get", "pods"], None), (["-v", "apply", "-f", "x"], None),
])
def test_only_the_plain_form_is_taken(argv, want, monkeypatch):
    monkeypatch.delenv("KUBELET_PY_SOCKET", raising=False)
    assert parse_plain(argv) == want


def test_the_socket_comes_from_the_environment_as_clicks_envvar(monkeypatch):
    monkeypatch.setenv("KUBELET_PY_SOCKET", "/e/s.sock")
    assert parse_plain(["apply", "-f", "x"])[0] == "/e/s.sock"
    assert parse_plain(["--socket", "rel.sock", "apply", "-f", "x"])[0].endswith("/rel.sock")


def test_files_dirs_and_recursion(tmp_path):
    (tmp_path / "a.yaml").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text("c")
    assert read_files([str(tmp_path)], False) == [(str(tmp_path / "a.yaml"), "a")]
    assert read_files([str(tmp_path)], True) == [(str(tmp_path / "a.yaml"), "a"), (str(tmp_path / "sub" / "c.json"), "c")]
    assert read_files([str(tmp_path / "b.txt")], False) == [(str(tmp_path / "b.txt"), "b")]
    with pytest.raises(MissingPath, match='the path ".*nope" does not exist'):
        read_files([str(tmp_path / "a.yaml"), str(tmp_path / "nope")], False)


def test_error_lines():
    class Refusal(Exception):
        code, reason = 422, "Invalid"
    assert server_message(Refusal("bad")) == "Error from server (Invalid): bad"
    assert server_message(MissingPath("p")) == 'error: the path "p" does not exist'
    assert os_error_message(PermissionError(13, "Permission denied", "/f")) == "/f: permission denied (run as root?)"
    assert os_error_message(FileNotFoundError(2, "No such file", "/g")) == "/g: No such file (FileNotFoundError)"
