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
