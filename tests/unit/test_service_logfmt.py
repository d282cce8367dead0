"""The daemon's log lines (kubelet_py.service.logfmt)."""

from __future__ import annotations

import io
import logging
import os
import re

import pytest

from kubelet_py.service import logfmt


@pytest.mark.parametrize("value,out", [("plain", "plain"), ("two words", '"two words"'), ("a=b", '"a=b"'),
                                       ('q"', '"q\\""'), ("line\nbreak", '"line\\nbreak"'), ("", '""'),
                                       (3, "3"), ("/run/kpy.sock", "/run/kpy.sock")])
def test_quote(value, out):
    assert logfmt.quote(value) == out


@pytest.mark.parametrize("level,prio", [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                        (logging.ERROR, 3), (logging.CRITICAL, 2), (25, 4)])
def test_priority(level, prio):
    assert logfmt.priority(level) == prio


def test_journal_stream_must_name_stderr():
    assert logfmt.journal_is("8:1234", 8, 1234)
    assert not logfmt.journal_is("8:1234", 8, 1235)
    assert not logfmt.journal_is(None, 8, 1234) and not logfmt.journal_is("junk", 8, 1234)


def _record(msg, level=logging.INFO, exc=None):
    return logging.LogRecord("kubelet_py.node", level, __file__, 1, msg, (), exc)


def test_a_line_per_record_with_time_level_logger_and_message():
    out = logfmt.LogfmtFormatter().format(_record("serving on /run/k.sock"))
    assert re.fullmatch(r'time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=kubelet_py.node '
                        r'msg="serving on /run/k.sock"', out), out


def test_journal_lines_carry_the_priority_and_no_time():
    assert logfmt.LogfmtFormatter(journal=True).format(_record("x", logging.WARNING)) == \
        "<4>level=warning logger=kubelet_py.node msg=x"


def test_a_traceback_stays_on_the_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        out = logfmt.LogfmtFormatter().format(_record("failed", logging.ERROR, sys.exc_info()))
    assert "\n" not in out and 'error="Traceback' in out and "ValueError: boom" in out


def test_setup_sets_our_levels():
    buf = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logfmt.OURS}
    try:
        logfmt.setup("warning", buf)
        logging.getLogger("kubelet_py.x").info("hidden")
        logging.getLogger("netns.y").warning("shown")
        logfmt.set_level("debug")
        logging.getLogger("runtime.z").debug("now shown")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for n, lvl in saved[2].items():
            logging.getLogger(n).setLevel(lvl)
    lines = buf.getvalue().splitlines()
    assert [re.search(r"msg=(.*)", ln).group(1) for ln in lines] == ["shown", '"now shown"']


def test_setup_writes_journal_lines_when_journal_stream_names_the_stream(tmp_path, monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logfmt.OURS}
    path = tmp_path / "stderr"
    try:
        for journal in (True, False):
            with open(path, "w") as f:
                st = os.fstat(f.fileno())
                monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + (0 if journal else 1)}")
                logfmt.setup("info", f)
                logging.getLogger("kubelet_py.node").warning("w")
            text = path.read_text()
            if journal:
                assert text == "<4>level=warning logger=kubelet_py.node msg=w\n"
            else:
                assert text.startswith("time=") and text.endswith(" level=warning logger=kubelet_py.node msg=w\n")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for n, lvl in saved[2].items():
            logging.getLogger(n).setLevel(lvl)
