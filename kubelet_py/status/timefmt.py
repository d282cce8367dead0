"""Times as the API and kubectl write them (pure).

Every function here takes its instants as POSIX seconds (`float`) or RFC 3339 strings and never
reads the clock: callers pass `now`.

- `rfc3339` / `parse_rfc3339`: the API's timestamps (`metav1.Time`: whole seconds, UTC, `Z`).
- `go_duration`: Go's `time.Duration.String()` (`10s`, `1m20s`, `5m0s`, `1.234s`, `523ms`), used in
  the kubelet's messages (`back-off 5m0s restarting ...`, `Successfully pulled image ... in 1.2s`).
- `human_duration`: apimachinery's `duration.HumanDuration`, kubectl's AGE column (`5s`, `3m20s`,
  `2d3h`).
- `rfc1123z`: Go's `time.RFC1123Z` layout, which `kubectl describe` uses for Start Time, Started,
  Finished.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NS = 1_000_000_000


class TimeFormatError(ValueError):
    def __init__(self, value: object):
        super().__init__(f"{value!r} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)")
        self.value = value


def rfc3339(ts: float) -> str:
    """`2024-05-01T12:00:00Z`: whole seconds, as `metav1.Time` marshals (the fraction is dropped)."""
    return datetime.fromtimestamp(int(ts // 1), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> float:
    """POSIX seconds of an RFC 3339 time, with or without a fraction, `Z` or an offset."""
    m = _RFC3339_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise TimeFormatError(value)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise TimeFormatError(value) from None
    return dt.timestamp() + (float(frac) if frac else 0.0)


def normalize(value: str | None) -> str | None:
    """An RFC 3339 time rewritten as the API stores it (UTC, whole seconds); None stays None."""
    if value is None or value == "":
        return None
    return rfc3339(parse_rfc3339(value))


def since(value: str | None, now: float) -> str:
    """kubectl's `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset."""
    if not value:
        return "<unknown>"
    return human_duration(now - parse_rfc3339(value))


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`: about two significant figures, up to years."""
    ns = int(round(seconds * _NS))
    secs = int(seconds)                       # Go: int(d.Seconds()) truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = ns // (60 * _NS)
    if minutes < 10:
        s = (ns // _NS) % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // (3600 * _NS)
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _frac(value: int, digits: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of `value` in units of 10**-digits, trailing zeros dropped."""
    out = ""
    printed = False
    for _ in range(digits):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            out = str(digit) + out
        value //= 10
    return ("." + out if printed else ""), value


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for a duration given in seconds (nanosecond precision)."""
    ns = int(round(seconds * _NS))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < _NS:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            frac, whole = _frac(u, 3)
            return f"{sign}{whole}{frac}µs"
        frac, whole = _frac(u, 6)
        return f"{sign}{whole}{frac}ms"
    frac, whole_s = _frac(u, 9)
    out = f"{whole_s % 60}{frac}s"
    minutes = whole_s // 60
    if minutes > 0:
        out = f"{minutes % 60}m" + out
        hours = minutes // 60
        if hours > 0:
            out = f"{hours}h" + out
    return sign + out


def truncate_ms(seconds: float) -> float:
    """Go's `Duration.Truncate(time.Millisecond)` on a duration in seconds."""
    return (int(round(seconds * _NS)) // 1_000_000) / 1000


def rfc1123z(value: str | float, tz: tzinfo = timezone.utc) -> str:
    """Go's RFC1123Z layout, `Mon, 02 Jan 2006 15:04:05 -0700`, in `tz` (kubectl uses the local
    zone; this module never reads it, so the caller chooses)."""
    ts = parse_rfc3339(value) if isinstance(value, str) else value
    dt = datetime.fromtimestamp(int(ts // 1), tz)
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return (f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{total // 60:02d}{total % 60:02d}")
