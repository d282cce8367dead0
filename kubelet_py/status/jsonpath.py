"""A small evaluator for `kubectl get -o jsonpath=...` templates (pure).

It covers kubectl's common forms:
- text outside braces is printed as is; `{"\\n"}` / `{'\\t'}` print a quoted literal;
- `{.status.podIP}`, `{$.metadata.name}`, `{.metadata.labels.app}`, escaped dots in keys
  (`{.metadata.annotations.kubernetes\\.io/config\\.source}`), `{['metadata']['name']}`;
- `[*]` and `.*` wildcards, `[0]`, `[-1]`, slices `[1:3]`, `[::2]`, unions `['a','b']`,
  recursive descent `..name`;
- filters `[?(@.type=="Ready")]` with ==, !=, <, <=, >, >= against a string, number, boolean or
  another path, and `[?(@.name)]` for presence;
- `{range .items[*]}...{end}` (nestable), the body evaluated relative to each element.

As kubectl prints them: the results of one `{...}` are joined by spaces; strings are written
raw, numbers and booleans as Go prints them, maps and lists as compact JSON (keys sorted).
Missing keys print nothing (kubectl allows missing keys); an index out of range is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .reasons import go_json


class JSONPathError(ValueError):
    pass


# -- parsing --

@dataclass
class _Text:
    text: str


@dataclass
class _Expr:
    steps: list
    root: bool


@dataclass
class _Range:
    expr: _Expr
    body: list = field(default_factory=list)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(s: str) -> str:
    quote, body = s[0], s[1:-1]
    if len(s) < 2 or s[-1] != quote:
        raise JSONPathError(f"unterminated quoted string {s!r}")
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _actions(template: str) -> list[tuple[str, str]]:
    """Split a template into ('text', s) and ('action', s) pieces."""
    out, i, text = [], 0, []
    while i < len(template):
        ch = template[i]
        if ch != "{":
            text.append(ch)
            i += 1
            continue
        if text:
            out.append(("text", "".join(text)))
            text = []
        depth, j, quote = 0, i + 1, ""
        while j < len(template):
            c = template[j]
            if quote:
                if c == "\\":
                    j += 2
                    continue
                if c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif c == "}" and depth <= 0:
                break
            j += 1
        if j >= len(template):
            raise JSONPathError(f"unclosed action in {template!r}")
        out.append(("action", template[i + 1:j].strip()))
        i = j + 1
    if text:
        out.append(("text", "".join(text)))
    return out


_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


def _parse_literal(s: str) -> Any:
    s = s.strip()
    if s[:1] in ("'", '"'):
        return ("lit", _unquote(s))
    if _NUMBER_RE.match(s):
        return ("lit", float(s) if any(c in s for c in ".eE") else int(s))
    if s in ("true", "false"):
        return ("lit", s == "true")
    if s.startswith("@") or s.startswith("$"):
        return ("path", _parse_path(s))
    raise JSONPathError(f"unrecognized filter operand {s!r}")


def _split_top(s: str, sep: str) -> list[str]:
    parts, depth, quote, cur, i = [], 0, "", [], 0
    while i < len(s):
        c = s[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(s):
                cur.append(s[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c in "[(":
            depth += 1
            cur.append(c)
        elif c in "])":
            depth -= 1
            cur.append(c)
        elif c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


_FILTER_OPS = ("==", "!=", "<=", ">=", "<", ">")


def _parse_filter(body: str) -> tuple:
    quote, depth = "", 0
    for i, c in enumerate(body):
        if quote:
            if c == quote:
                quote = ""
            continue
        if c in "'\"":
            quote = c
            continue
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        if depth == 0:
            for op in _FILTER_OPS:
                if body.startswith(op, i):
                    return ("cmp", _parse_literal(body[:i]), op, _parse_literal(body[i + len(op):]))
    return ("exists", _parse_literal(body))


def _parse_bracket(body: str) -> tuple:
    body = body.strip()
    if body == "*":
        return ("wild",)
    if body.startswith("?"):
        inner = body[1:].strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise JSONPathError(f"bad filter [{body}]")
        return ("filter", _parse_filter(inner[1:-1].strip()))
    if body[:1] in ("'", '"'):
        return ("names", [_unquote(p.strip()) for p in _split_top(body, ",")])
    if ":" in body:
        parts = body.split(":")
        if len(parts) > 3:
            raise JSONPathError(f"bad slice [{body}]")
        try:
            vals = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
        except ValueError:
            raise JSONPathError(f"bad slice [{body}]") from None
        return ("slice", *vals)
    if "," in body:
        try:
            return ("indexes", [int(p) for p in body.split(",")])
        except ValueError:
            raise JSONPathError(f"bad index [{body}]") from None
    try:
        return ("index", int(body))
    except ValueError:
        raise JSONPathError(f"bad index [{body}]") from None


def _read_name(s: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(s) and s[i] not in ".[":
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        out.append(s[i])
        i += 1
    return "".join(out), i


def _parse_path(s: str) -> _Expr:
    s = s.strip()
    root = False
    i = 0
    if s.startswith("$"):
        root, i = True, 1
    elif s.startswith("@"):
        i = 1
    steps: list = []
    while i < len(s):
        if s.startswith("..", i):
            name, i = _read_name(s, i + 2)
            steps.append(("recursive", name))
        elif s[i] == ".":
            name, i = _read_name(s, i + 1)
            if name == "*":
                steps.append(("wild",))
            elif name:
                steps.append(("field", name))
        elif s[i] == "[":
            depth, j, quote = 0, i, ""
            while j < len(s):
                c = s[j]
                if quote:
                    if c == quote:
                        quote = ""
                elif c in "'\"":
                    quote = c
                elif c == "[":
                    depth += 1
                elif c == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(s):
                raise JSONPathError(f"unclosed [ in {s!r}")
            steps.append(_parse_bracket(s[i + 1:j]))
            i = j + 1
        else:
            name, i = _read_name(s, i)
            steps.append(("field", name))
    return _Expr(steps, root)


def parse(template: str) -> list:
    """The template as a tree of text, expression and range nodes."""
    stack: list[list] = [[]]
    for kind, value in _actions(template):
        if kind == "text":
            stack[-1].append(_Text(value))
        elif value == "end":
            if len(stack) == 1:
                raise JSONPathError("{end} without {range}")
            body = stack.pop()
            stack[-1][-1].body = body
        elif value.startswith("range ") or value == "range":
            stack[-1].append(_Range(_parse_path(value[5:])))
            stack.append([])
        elif value[:1] in ("'", '"'):
            stack[-1].append(_Text(_unquote(value)))
        elif value == "":
            continue
        else:
            stack[-1].append(_parse_path(value))
    if len(stack) != 1:
        raise JSONPathError("{range} without {end}")
    return stack[0]


# -- evaluation --

def _descend(value: Any):
    yield value
    if isinstance(value, dict):
        for k in sorted(value):
            yield from _descend(value[k])
    elif isinstance(value, list):
        for v in value:
            yield from _descend(v)


def _compare(a: Any, op: str, b: Any) -> bool:
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if not numeric and op not in ("==", "!="):
        try:
            a, b = float(a), float(b)
        except (TypeError, ValueError):
            return False
    elif not numeric:
        a, b = (a if isinstance(a, str) else go_text(a)), (b if isinstance(b, str) else go_text(b))
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _operand(operand: tuple, item: Any, root: Any) -> list:
    if operand[0] == "lit":
        return [operand[1]]
    return _evaluate(operand[1], item, root)


def _step(step: tuple, values: list, root: Any) -> list:
    kind, out = step[0], []
    for v in values:
        if kind == "field":
            if isinstance(v, dict) and step[1] in v:
                out.append(v[step[1]])
        elif kind == "names":
            if isinstance(v, dict):
                out.extend(v[n] for n in step[1] if n in v)
        elif kind == "wild":
            if isinstance(v, dict):
                out.extend(v[k] for k in sorted(v))
            elif isinstance(v, list):
                out.extend(v)
        elif kind == "recursive":
            for d in _descend(v):
                if isinstance(d, dict) and (step[1] in d):
                    out.append(d[step[1]])
                elif step[1] in ("", "*") and d is not v:
                    out.append(d)
        elif kind in ("index", "indexes"):
            if not isinstance(v, list):
                continue
            for idx in ([step[1]] if kind == "index" else step[1]):
                real = idx + len(v) if idx < 0 else idx
                if not 0 <= real < len(v):
                    raise JSONPathError(f"array index out of bounds: index {idx}, length {len(v)}")
                out.append(v[real])
        elif kind == "slice":
            if isinstance(v, list):
                out.extend(v[slice(step[1], step[2], step[3])])
        elif kind == "filter":
            if not isinstance(v, list):
                continue
            cond = step[1]
            for item in v:
                if cond[0] == "exists":
                    keep = bool(_operand(cond[1], item, root))
                else:
                    left, right = _operand(cond[1], item, root), _operand(cond[3], item, root)
                    keep = bool(left) and bool(right) and _compare(left[0], cond[2], right[0])
                if keep:
                    out.append(item)
    return out


def _evaluate(expr: _Expr, current: Any, root: Any) -> list:
    values = [root if expr.root else current]
    for step in expr.steps:
        values = _step(step, values, root)
    return values


def go_text(value: Any) -> str:
    """How kubectl prints one result: strings raw, maps and lists as JSON, the rest as Go does."""
    if isinstance(value, (dict, list)):
        return go_json(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return str(value)


def _render(nodes: list, current: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Range):
            for item in _evaluate(node.expr, current, root):
                _render(node.body, item, root, out)
        else:
            out.append(" ".join(go_text(v) for v in _evaluate(node, current, root)))


def jsonpath(template: str, data: Any) -> str:
    """Render a kubectl jsonpath template against `data` (a dict, e.g. a pod or a List)."""
    out: list[str] = []
    _render(parse(template), data, data, out)
    return "".join(out)


evaluate = jsonpath   # the name kubelet_py.kubectl imports
