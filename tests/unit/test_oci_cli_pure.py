"""The OCI command line's pure core (runtime.oci.state): ids, status, signals, hooks, state
document, log lines, features; and the parser's spelling of runc's command line."""

from __future__ import annotations

import json

import pytest

from runtime.oci.state import (OciError, Recorded, features, hook_state, log_line, parse_hooks, parse_signal,
                               state_doc, status_of, validate_id)


@pytest.mark.parametrize("cid", ["abc", "a-b_c.d+e", "9" * 64, "A.1"])
def test_valid_ids(cid):
    assert validate_id(cid) == cid


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "a b", "a\nb", "x" * 1025, "é"])
def test_invalid_ids_name_the_field(cid):
    with pytest.raises(OciError) as e:
        validate_id(cid)
    assert e.value.field == "id"


def test_status_from_facts():
    assert status_of(alive=True, fifo_present=True) == "created"
    assert status_of(alive=True, fifo_present=False) == "running"
    assert status_of(alive=False, fifo_present=True) == "stopped"
    assert status_of(alive=False, fifo_present=False) == "stopped"


def _rec(**kw):
    base = dict(id="c1", pid=42, bundle="/b", cgroup="x/c1", start_time=7, created="2026-12-01T00:00:00Z",
                annotations={"a": "b"})
    base.update(kw)
    return Recorded(**base)


def test_state_document_is_the_specs():
    doc = state_doc(_rec(), "running")
    assert {k: doc[k] for k in ("ociVersion", "id", "status", "pid", "bundle", "annotations")} == {
        "ociVersion": "1.1.0", "id": "c1", "status": "running", "pid": 42, "bundle": "/b", "annotations": {"a": "b"}}
    assert state_doc(_rec(), "stopped")["pid"] == 0  # no pid once the process is gone


def test_recorded_round_trip_and_corrupt():
    r = _rec(hooks={"poststop": [{"path": "/x", "args": ["/x"], "env": [], "timeout": None}]})
    assert Recorded.from_json(json.loads(json.dumps(r.to_json()))) == r
    r = _rec(rootfs="/b/rootfs", host_mounts=[301])  # no mount namespace: what delete detaches
    assert Recorded.from_json(json.loads(json.dumps(r.to_json()))).host_mounts == [301]
    old = {k: v for k, v in _rec().to_json().items() if k not in ("rootfs", "host_mounts")}  # a state of before
    assert Recorded.from_json(old).host_mounts == []
    with pytest.raises(OciError):
        Recorded.from_json({"id": "c1"})
    with pytest.raises(OciError):
        Recorded.from_json([])


@pytest.mark.parametrize("s,n", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("TERM", 15),
                                 ("HUP", 1), ("WINCH", 28), ("RTMIN", 34), ("RTMIN+3", 37), ("RTMAX", 64),
                                 ("RTMAX-1", 63), ("64", 64)])
def test_signals(s, n):
    assert parse_signal(s) == n


@pytest.mark.parametrize("s", ["0", "65", "FOO", "SIG", "RTMIN+40", "-1", ""])
def test_bad_signals(s):
    with pytest.raises(OciError) as e:
        parse_signal(s)
    assert e.value.field == "signal"


def test_hooks_parsed_with_defaults():
    h = parse_hooks({"prestart": [{"path": "/bin/true"}], "poststop": [{"path": "/x", "args": ["x", "1"],
                                                                         "env": ["A=1"], "timeout": 3}]})
    assert h["prestart"] == [{"path": "/bin/true", "args": ["/bin/true"], "env": [], "timeout": None}]
    assert h["poststop"][0] == {"path": "/x", "args": ["x", "1"], "env": ["A=1"], "timeout": 3}
    assert parse_hooks(None) == {} and parse_hooks({"poststart": []}) == {}


@pytest.mark.parametrize("doc,field", [
    ({"bogus": []}, "hooks.bogus"),
    ({"prestart": {}}, "hooks.prestart"),
    ({"prestart": [{"path": "rel"}]}, "hooks.prestart[0].path"),
    ({"poststop": [{"path": "/x", "timeout": 0}]}, "hooks.poststop[0].timeout"),
    ({"poststop": [{"path": "/x", "env": ["NOEQ"]}]}, "hooks.poststop[0].env"),
    ({"poststop": [{"path": "/x", "args": [1]}]}, "hooks.poststop[0].args"),
    ([], "hooks"),
])
def test_bad_hooks_name_the_field(doc, field):
    with pytest.raises(OciError) as e:
        parse_hooks(doc)
    assert e.value.field == field
    assert field in e.value.line()


def test_hook_state():
    assert hook_state("c", 5, "/b", "creating", {}) == {"ociVersion": "1.1.0", "id": "c", "status": "creating",
                                                        "pid": 5, "bundle": "/b", "annotations": {}}


def test_log_lines():
    j = json.loads(log_line("json", "error", 'bad "x"', "T"))
    assert j == {"level": "error", "msg": 'bad "x"', "time": "T"}
    assert log_line("text", "error", 'bad "x"', "T") == 'time="T" level=error msg="bad \\"x\\""\n'


def test_features_document():
    f = features(["pid", "mount"], ["CAP_KILL"], ["ro", "bind"], ["SCMP_ACT_ALLOW"], ["SCMP_ARCH_X86_64"])
    assert f["ociVersionMin"] == "1.0.0" and f["ociVersionMax"] == "1.1.0"
    assert "createContainer" in f["hooks"] and f["linux"]["namespaces"] == ["mount", "pid"]
    assert f["linux"]["cgroup"]["v1"] and not f["linux"]["cgroup"]["systemd"]
    assert f["linux"]["seccomp"]["enabled"]


def test_cli_parser_speaks_runcs_command_lines():
    from runtime.oci.cli import parse_args
    # as conmon calls it
    o = parse_args(["--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b",
                    "--pid-file", "/p", "--console-socket", "/s", "--no-pivot", "--no-new-keyring", "cid"])
    assert (o.root, o.log, o.log_format, o.verb, o.bundle, o.pid_file, o.console_socket, o.id) == (
        "/r", "/l", "json", "create", "/b", "/p", "/s", "cid")
    # as the containerd shim (go-runc) calls them
    o = parse_args(["kill", "--all", "cid", "9"])
    assert (o.id, o.signal, o.all) == ("cid", "9", True)
    o = parse_args(["exec", "--process", "/p.json", "--pid-file", "/p", "--detach", "cid"])
    assert (o.process, o.detach, o.id, o.args) == ("/p.json", True, "cid", [])
    o = parse_args(["delete", "--force", "cid"])
    assert o.force and o.id == "cid"
    o = parse_args(["ps", "--format", "json", "cid"])
    assert o.format == "json"
    assert parse_args(["kill", "cid"]).signal == "TERM"
    # Go's flag package takes one dash too, and --opt=value
    o = parse_args(["-root=/r", "create", "-bundle", "/b", "--pid-file=/p", "x"])
    assert (o.root, o.bundle, o.pid_file, o.id) == ("/r", "/b", "/p", "x")
    # exec: everything after the id is the command, options included
    o = parse_args(["exec", "-t", "-e", "A=1", "-e", "B=2", "cid", "sh", "-c", "echo --x"])
    assert (o.tty, o.env, o.id, o.args) == (True, ["A=1", "B=2"], "cid", ["sh", "-c", "echo --x"])
    assert parse_args(["--version"]).version and parse_args([]).verb is None


@pytest.mark.parametrize("argv,msg", [
    (["bogus"], "unknown verb"), (["create"], "missing ID"), (["start", "a", "b"], "unexpected argument"),
    (["create", "--bundle"], "needs a value"), (["--log-format", "xml", "list"], "not one of"),
    (["delete", "--nope", "x"], "unknown option"), (["create", "--preserve-fds", "x", "c"], "not a number"),
    (["kill", "--all=1", "c"], "takes no value"),
])
def test_cli_usage_errors(argv, msg):
    from runtime.oci.cli import UsageError, parse_args
    with pytest.raises(UsageError, match=msg):
        parse_args(argv)


def test_cli_import_is_lean():
    """The CLI module itself imports only os and sys: each verb loads what it needs."""
    import subprocess
    import sys
    code = ("import sys; before = set(sys.modules); import runtime.oci.cli; "
            "extra = set(sys.modules) - before - {'runtime', 'runtime.oci', 'runtime.oci.cli', '__future__'}; print(sorted(extra))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
