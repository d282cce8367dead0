"""CRI log records (pure but for the clock)."""

import re

from runtime.shim import MAX_LINE, cri_records

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
    from runtime.shim import rotated_name
    t = 1764632272.5  # 2025-12-01T23:37:52Z
    assert rotated_name("/l/c/0.log", [], t) == "/l/c/0.log.20251201-233752"
    assert rotated_name("/l/c/0.log", ["0.log", "0.log.20251201-233752"], t) == "/l/c/0.log.20251201-233752.1"
    assert rotated_name("/l/c/0.log", ["0.log.20251201-233752", "0.log.20251201-233752.1"], t).endswith("-233752.2")


def test_the_oldest_rotated_files_beyond_the_count_go():
    from runtime.shim import rotated_to_delete
    names = ["0.log", "0.log.20251201-233752.1", "0.log.20251201-233750", "0.log.20251201-233752",
             "0.log.20251201-233752.10", "0.log.20251201-233752.2", "1.log.20200101-000000"]
    assert rotated_to_delete("/l/0.log", names, 3) == ["/l/0.log.20251201-233750", "/l/0.log.20251201-233752",
                                                       "/l/0.log.20251201-233752.1"]
    assert rotated_to_delete("/l/0.log", names, 10) == []
    assert len(rotated_to_delete("/l/0.log", names, 1)) == 5  # only the current file stays


def test_a_rotation_after_removals_still_sorts_last():
    from runtime.shim import rotated_name
    t = 1764632272.5
    assert rotated_name("/l/0.log", ["0.log.20251201-233752.1", "0.log.20251201-233752.2"], t).endswith("-233752.3")


def test_supervisor_arguments():
    import pytest
    from runtime.shim import parse_args
    assert parse_args(["--pod-dir", "/p"]) == {"pod_dir": "/p", "cgroup_parent": "kubelet-py"}
    assert parse_args(["--cgroup-parent", "x", "--pod-dir", "/p"])["cgroup_parent"] == "x"
    for bad, why in ((["--pod-dir"], "needs a value"), ([], "required"), (["--pod-dir", "/p", "-x"], "unknown")):
        with pytest.raises(SystemExit, match=why):
            parse_args(bad)
