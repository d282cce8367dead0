"""The daemon's log lines: one logfmt line per record on stderr, which journald keeps as it is.

    time=2026-12-04T21:30:02.120Z level=info logger=kubelet_py.node msg="serving on /run/kubelet-py/kubelet-py.sock"

Values with spaces, quotes, '=' or control characters are quoted as JSON strings (a traceback
stays on one line, its newlines escaped). When stderr is the journal ($JOURNAL_STREAM names
stderr's device and inode, as systemd sets it for StandardError=journal), each line starts with
the syslog priority `<N>` (journald's SyslogLevelPrefix: `journalctl -p warning` works) and the
time is left out (the journal stamps every line). `--log-level` sets the level of the agent's
loggers (kubelet_py, runtime, netns); libraries log warnings and errors only."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

OURS = ("kubelet_py", "runtime", "netns")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_BARE = re.compile(r"[^\s\"=\\\x00-\x1f\x7f]+")


def quote(value) -> str:
    s = str(value)
    return s if _BARE.fullmatch(s) else json.dumps(s, ensure_ascii=False)


def line(fields: list[tuple[str, object]]) -> str:
    return " ".join(f"{k}={quote(v)}" for k, v in fields)


def priority(levelno: int) -> int:
    """syslog priority of a logging level (the nearest level at or above it)."""
    for lvl in sorted(_PRIORITY):
        if levelno <= lvl:
            return _PRIORITY[lvl]
    return 2


def journal_is(stream_env: str | None, st_dev: int, st_ino: int) -> bool:
    """Whether $JOURNAL_STREAM ("DEV:INODE") names the file whose fstat gave st_dev/st_ino."""
    try:
        dev, ino = (stream_env or "").split(":")
        return int(dev) == st_dev and int(ino) == st_ino
    except ValueError:
        return False


class LogfmtFormatter(logging.Formatter):
    def __init__(self, journal: bool = False):
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        fields: list[tuple[str, object]] = []
        if not self.journal:
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            fields.append(("time", f"{t}.{int(record.msecs):03d}Z"))
        fields += [("level", record.levelname.lower()), ("logger", record.name), ("msg", record.getMessage())]
        if record.exc_info:
            fields.append(("error", self.formatException(record.exc_info)))
        out = line(fields)
        return f"<{priority(record.levelno)}>{out}" if self.journal else out


def setup(level: str, stream=None) -> logging.Handler:
    """Log records of the agent at `level` (debug, info, warning, error), others from warning,
    as logfmt lines on `stream` (stderr)."""
    stream = stream or sys.stderr
    try:
        st = os.fstat(stream.fileno())
        journal = journal_is(os.environ.get("JOURNAL_STREAM"), st.st_dev, st.st_ino)
    except (OSError, ValueError, AttributeError):  # a stream without a file descriptor (tests)
        journal = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter(journal))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    set_level(level)
    return handler


def set_level(level: str) -> None:
    for name in OURS:
        logging.getLogger(name).setLevel(getattr(logging, level.upper()))
