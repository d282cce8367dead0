"""CRI log records as kubectl logs shows them."""

from kubelet_py.logs import lines_of, parse_record, render, select, ts_seconds


def test_records_and_partials():
    data = (b"2026-12-04T10:00:00.000000001Z stdout F hello\n"
            b"2026-12-04T10:00:01.000000000Z stderr P par\n"
            b"2026-12-04T10:00:01.500000000Z stdout F between\n"
            b"2026-12-04T10:00:02.000000000Z stderr F tial\n"
            b"garbage line\n"
            b"2026-12-04T10:00:03.000000000Z stdout F \n")
    pending = {}
    got = lines_of(data, pending)
    assert got == [("2026-12-04T10:00:00.000000001Z", b"hello\n"), ("2026-12-04T10:00:01.500000000Z", b"between\n"),
                   ("2026-12-04T10:00:01.000000000Z", b"partial\n"), ("2026-12-04T10:00:03.000000000Z", b"\n")]
    assert pending == {}
    assert render(got[:1], True) == b"2026-12-04T10:00:00.000000001Z hello\n"
    assert parse_record(b"x stdout X y") is None


def test_tail_and_since():
    lines = [(f"2026-12-04T10:00:0{i}Z", f"{i}\n".encode()) for i in range(5)]
    assert [t for _, t in select(lines, 2, None, 0)] == [b"3\n", b"4\n"]
    assert select(lines, 0, None, 0) == []
    now = ts_seconds("2026-12-04T10:00:04Z")
    assert [t for _, t in select(lines, None, 1.5, now)] == [b"3\n", b"4\n"]
