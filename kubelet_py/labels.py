"""Label selectors as kubectl's `-l` and the API's `?labelSelector=` take them (apimachinery's
labels.Parse): `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas;
every requirement must hold. Pure."""

from __future__ import annotations

import re

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_NAME})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_CMP = re.compile(rf"^\s*({_NAME})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_NAME})\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    """Commas separate requirements, except inside a set's parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def parse_selector(text: str) -> list[tuple[str, str, frozenset[str]]]:
    """[(key, op, values)] with op one of in, notin, exists, !exists."""
    reqs = []
    if not text.strip():
        return reqs
    for part in _split(text):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            if not values:
                raise SelectorError(f"{part.strip()!r}: a set needs at least one value")
            reqs.append((m.group(1), m.group(3), values))
        elif m := _CMP.match(part):
            reqs.append((m.group(1), "notin" if m.group(3) == "!=" else "in", frozenset([m.group(4)])))
        elif m := _EXISTS.match(part):
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return reqs


def matches(reqs, obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, values in reqs:
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and key in labels and labels[key] in values:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True
