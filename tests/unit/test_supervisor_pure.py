"""CRI log records (pure but for the clock)."""

import re

import pytest

from runtime.supervisor.crilog import MAX_LINE, cri_records

REC = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)\n$", re.S)


def test_complete_lines_and_the_rest_kept():
    buf = bytearray(b"one\ntwo\nthr")
    recs = cri_records("stdout", buf)
    assert [REC.match(r).group(3) for r in recs] == [b"one", b"two"] and buf == b"thr"
    assert [REC.match(r).group(3) for r in cri_records("stdout", buf, final=True)] == [b"thr"] and not buf


def test_long_lines_are_split_into_partial_records():
    buf = bytearray(b"x" * (MAX_LINE * 2 + 5) + b"\n")
    recs = [REC.match(r) for r in cri_records("stderr", buf)]
    assert [(m.group(1), m.group(2), len(m.group(3))) for m in recs] == [
        (b"stderr", b"P", MAX_LINE), (b"stderr", b"P", MAX_LINE), (b"stderr", b"F", 5)]


def test_rotated_names_carry_the_time_and_never_collide():
    from runtime.supervisor.crilog import rotated_name
    t = 1764632272.5  # 2025-12-01T23:37:52Z
    assert rotated_name("/l/c/0.log", [], t) == "/l/c/0.log.20251201-233752"
    assert rotated_name("/l/c/0.log", ["0.log", "0.log.20251201-233752"], t) == "/l/c/0.log.20251201-233752.1"
    assert rotated_name("/l/c/0.log", ["0.log.20251201-233752", "0.log.20251201-233752.1"], t).endswith("-233752.2")


def test_the_oldest_rotated_files_beyond_the_count_go():
    from runtime.supervisor.crilog import rotated_to_delete
    names = ["0.log", "0.log.20251201-233752.1", "0.log.20251201-233750", "0.log.20251201-233752",
             "0.log.20251201-233752.10", "0.log.20251201-233752.2", "1.log.20200101-000000"]
    assert rotated_to_delete("/l/0.log", names, 3) == ["/l/0.log.20251201-233750", "/l/0.log.20251201-233752",
                                                       "/l/0.log.20251201-233752.1"]
    assert rotated_to_delete("/l/0.log", names, 10) == []
    assert len(rotated_to_delete("/l/0.log", names, 1)) == 5  # only the current file stays


def test_a_rotation_after_removals_still_sorts_last():
    from runtime.supervisor.crilog import rotated_name
    t = 1764632272.5
    assert rotated_name("/l/0.log", ["0.log.20251201-233752.1", "0.log.20251201-233752.2"], t).endswith("-233752.3")


def test_the_zygote_takes_only_its_socket_argument():
    import pytest
    from runtime.supervisor.zygote import main
    for bad in ([], ["--socket-fd"], ["--pod-dir", "/p"], ["--socket-fd", "3", "x"]):
        with pytest.raises(SystemExit, match="usage: --socket-fd N"):
            main(bad)


def test_a_supervisor_is_known_by_its_pid_and_start_time(tmp_path, monkeypatch):
    """supervisor_pid trusts a pid file only for the process that wrote it: same pid, same start
    time, a supervisor's command line (a recycled pid names another process)."""
    import os
    from runtime.supervisor import launch
    from runtime.supervisor.wire import PID_FILE, pid_record, start_time
    pid_file = tmp_path / PID_FILE
    assert launch.supervisor_pid(str(tmp_path)) is None  # no file
    pid_file.write_bytes(pid_record())
    assert pid_record() == f"{os.getpid()} {start_time(os.getpid())}".encode()
    assert launch.supervisor_pid(str(tmp_path)) is None  # this test's command line is no supervisor's
    monkeypatch.setattr(launch, "MARK", b"python")  # pretend it is
    assert launch.supervisor_pid(str(tmp_path)) == os.getpid()
    pid_file.write_text(f"{os.getpid()} {start_time() + 1}")  # the pid came back as another process
    assert launch.supervisor_pid(str(tmp_path)) is None
    pid_file.write_text(f"{os.getpid()}")  # no start time: an older supervisor, whose command line
    assert launch.supervisor_pid(str(tmp_path)) is None  # named its pod dir (this one's does not)


def test_records_read_back_without_a_supervisor_make_running_unknown(tmp_path):
    from runtime.supervisor import records
    (tmp_path / "containers").mkdir()
    for cid, state in (("a", "created"), ("b", "running"), ("c", "exited"), ("p", "created")):
        rec = records.new_record({"id": cid, "name": cid, "bundle": "/b", "log_path": "/l", "attempt": 2,
                                  "prepared": True}, "T")  # a client's `prepared` is not taken
        rec.update(state=state, prepared=cid == "p")  # p: its init made at create, waiting to exec
        records.save(str(tmp_path), rec)
    (tmp_path / "containers" / "junk.json").write_text("{")  # unreadable: skipped with a warning
    (tmp_path / "containers" / "d.json.tmp.123").write_text("{}")  # a torn write's temp file
    (tmp_path / "containers" / "e.json").write_text('{"id": "x", "state": "running"}')  # not its own name
    alive = records.load_all(str(tmp_path), True)
    assert {k: v["state"] for k, v in alive.items()} == {"a": "created", "b": "running", "c": "exited", "p": "created"}
    dead = records.load_all(str(tmp_path), False)
    assert {k: v["state"] for k, v in dead.items()} == {"a": "created", "b": "unknown", "c": "exited", "p": "unknown"}
    assert "supervisor died" in dead["b"]["message"] and dead["a"]["attempt"] == 2
    assert "waited to start" in dead["p"]["message"]
    assert records.new_record({"id": "q", "prepared": True}, "T")["prepared"] is False
    records.drop(str(tmp_path), "a")
    records.drop(str(tmp_path), "a")  # idempotent
    assert "a" not in records.load_all(str(tmp_path), True)


def test_errors_travel_with_their_kind():
    from runtime.errors import FAILED_PRECONDITION, RuntimeFailure
    from runtime.supervisor.wire import SupervisorError, error_answer, raise_if_error
    ans = error_answer(SupervisorError("container x is exited", kind=FAILED_PRECONDITION, obj="container x"))
    with pytest.raises(SupervisorError) as e:
        raise_if_error(dict(ans))
    assert (e.value.kind, e.value.obj, str(e.value)) == (FAILED_PRECONDITION, "container x", "container x is exited")
    assert error_answer(KeyError("k"))["kind"] == "INTERNAL"  # a bug is INTERNAL, with its type named
    assert "KeyError" in error_answer(KeyError("k"))["error"]
    assert raise_if_error({"ok": True, "pid": 3}) == {"pid": 3}
    with pytest.raises(ValueError):
        RuntimeFailure("x", kind="NOPE")


def test_stop_signals_by_name_and_number():
    from runtime.supervisor.server import _signal_number
    from runtime.supervisor.wire import SupervisorError
    assert _signal_number("SIGQUIT", "c") == _signal_number("QUIT", "c") == _signal_number("3", "c") == 3
    assert _signal_number(15, "c") == 15 and _signal_number("sigusr1", "c") == 10
    for bad in ("SIGNOPE", "", 0, 99, None, True):
        with pytest.raises(SupervisorError) as e:
            _signal_number(bad, "c")
        assert e.value.field == "stop_signal"
