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


def test_follow_reads_the_last_lines_of_a_log_removed_at_once_and_follows_a_rotation(tmp_path):
    import asyncio
    import os
    from kubelet_py.logs import read_log
    path = tmp_path / "0.log"
    path.write_bytes(b"2026-12-04T10:00:00Z stdout F up\n")
    running = {"v": True}

    async def main():
        got = []
        gen = read_log(str(path), follow=True, still_running=lambda: running["v"], poll=0.01)
        got.append(await gen.__anext__())
        with open(path, "ab") as f:  # rotated: renamed away, a new file takes the name
            f.write(b"2026-12-04T10:00:01Z stdout F before-rotation\n")
        os.rename(path, str(path) + ".20261204-100001")
        path.write_bytes(b"2026-12-04T10:00:02Z stdout F after-rotation\n")
        got.append(await gen.__anext__())
        got.append(await gen.__anext__())
        with open(path, "ab") as f:  # the last line, and the pod's log dir goes at once
            f.write(b"2026-12-04T10:00:03Z stdout F bye\n")
        os.unlink(path)
        running["v"] = False
        async for chunk in gen:
            got.append(chunk)
        return b"".join(got)
    assert asyncio.run(main()) == b"up\nbefore-rotation\nafter-rotation\nbye\n"
