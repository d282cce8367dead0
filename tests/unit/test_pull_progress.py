"""Pull progress (kubelet_py/pullprogress.py): the plain lines written when stderr is not a
terminal (with a clock of the test's own), and the rich bars drawn on a real pty (os.openpty)."""

from __future__ import annotations

import io
import os
import re
import select
import threading

from kubelet_py.pullprogress import PlainProgress, RichProgress, eta_text, human_bytes, pull_progress

A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_a_layer_downloaded_and_unpacked():
    out, clock = io.StringIO(), Clock()
    p = PlainProgress(out, every=10, clock=clock)
    p(A, "download", 1000, 4000)
    clock.t += 5
    p(A, "download", 2000, 4000)  # within `every` of the start: no line
    clock.t += 5
    p(A, "download", 3000, 4000)  # 10 s after the start: a line with speed and ETA
    p(A, "downloaded", 4000, 4000)
    p(A, "unpack", 0, 4000)
    p(A, "done", 4000, 4000)
    assert out.getvalue().splitlines() == [
        "a1a1a1a1a1a1: downloading 3000/4000 bytes (75%, 300B/s, ETA 0:00:03)",
        "a1a1a1a1a1a1: downloaded 4000 bytes",
        "a1a1a1a1a1a1: unpacked 4000 bytes"]


def test_plain_lines_of_two_layers_from_two_threads_stay_whole():
    out = io.StringIO()
    p = PlainProgress(out)
    threads = [threading.Thread(target=lambda d=d: [p(d, ph, 10, 10) for _ in range(200) for ph in ("downloaded", "done")])
               for d in (A, B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 800
    assert all(re.fullmatch(r"(a1|b2){6}: (downloaded|unpacked) 10 bytes", ln) for ln in lines)


def test_units():
    assert [human_bytes(n) for n in (999, 1000, 2_500_000, 3 * 10**9)] == ["999B", "1.0kB", "2.5MB", "3.0GB"]
    assert (eta_text(None), eta_text(3725.2)) == ("-:--:--", "1:02:05")


def test_a_stream_that_is_not_a_terminal_gets_plain_lines():
    with pull_progress(io.StringIO()) as p:
        assert isinstance(p, PlainProgress)


def _read_all(fd: int, timeout: float = 0.5) -> str:
    out = b""
    while select.select([fd], [], [], timeout)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def test_on_a_pty_each_layer_gets_a_bar_with_its_digest_and_percentage(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "160")
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    try:
        with pull_progress(stream) as p:
            assert isinstance(p, RichProgress)
            p(A, "download", 512 * 1024, 1024 * 1024)
            p(B, "download", 0, 2048)
            p(A, "downloaded", 1024 * 1024, 1024 * 1024)
            p(B, "downloaded", 2048, 2048)
            p(A, "unpack", 0, 1024 * 1024)
            p(A, "done", 1024 * 1024, 1024 * 1024)
        text = _read_all(master)
    finally:
        stream.close()
        os.close(master)
    assert "a1a1a1a1a1a1" in text and "b2b2b2b2b2b2" in text, text
    assert "100%" in text and "\x1b[" in text, text  # drawn with terminal escapes
    assert "1.0/1.0 MB" in text or "1.0 MB" in text, text  # bytes done of the total
    assert "unpacked" in text, text
