"""YAML and JSON text to plain values, read as Kubernetes reads them, with bounded memory.

Kubernetes turns YAML into JSON with sigs.k8s.io/yaml, which decodes with go-yaml v2: YAML 1.1
scalars. So an unquoted `0777` is the integer 511, `yes`/`no`/`on`/`off`/`y`/`n` (any of their
three spellings) are booleans, `1_000` is 1000, `0x1F` is 31, a timestamp stays a string, and
base-60 numbers (`1:20`) are strings. Quoted scalars are always strings.

Hazards are refused with an error naming the line (and the field path where there is one):
aliases that expand past a small budget (alias bombs) or refer to themselves, nesting deeper than
MAX_DEPTH, a document longer than its cap, a key given twice in one mapping, keys that are not
strings (sigs.k8s.io/yaml would turn `1:` or `on:` into "1" or "true"; we ask for quotes),
tags other than YAML's core ones, and .nan/.inf (JSON has no such numbers).

Events are consumed one at a time (yaml.parse), values built on an explicit stack: no recursion,
and memory grows with the text, not with what aliases would expand to."""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field

import yaml

from kubelet_py.api.errors import PARSE, FieldError, Path

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pyyaml without libyaml
    _Loader = yaml.SafeLoader

MAX_DEPTH = 200  # real manifests nest under 20 levels
ALIAS_BUDGET = 10_000  # values an alias may copy, per document


class ReadError(Exception):
    def __init__(self, detail: str, line: int | None = None, path: str = "", document: int | None = None):
        super().__init__(detail)
        self.detail, self.line, self.path, self.document = detail, line, path, document

    def field_error(self) -> FieldError:
        return FieldError(PARSE, self.path, detail=self.detail, line=self.line)


@dataclass
class RawDocument:
    value: object  # None for an empty document
    index: int  # 0-based, counting empty documents too
    line: int  # 1-based line where it starts


# --- scalars, as go-yaml v2's resolve() ---------------------------------------------------

_BOOL_NULL = {}
for _words, _v in ((("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
                   (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
                   (("", "~", "null", "Null", "NULL"), None)):
    for _w in _words:
        _BOOL_NULL[_w] = _v
_SPECIAL_FLOAT = {".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}
for _s, _sign in (("", 1), ("+", 1), ("-", -1)):
    for _w in (".inf", ".Inf", ".INF"):
        _SPECIAL_FLOAT[_s + _w] = _sign * math.inf

# Go's strconv.ParseInt(s, 0, 64) after go-yaml removed every "_"
_GO_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_INT64 = 2**63
_UINT64 = 2**64


def _go_int(text: str):
    m = _GO_INT.fullmatch(text)
    if not m or len(text) > 70:
        return None
    sign, digits = m.groups()
    if digits[:2] in ("0x", "0X"):
        n = int(digits[2:], 16)
    elif digits[:2] in ("0o", "0O"):
        n = int(digits[2:], 8)
    elif digits[:2] in ("0b", "0B"):
        n = int(digits[2:], 2)
    elif len(digits) > 1 and digits[0] == "0":
        n = int(digits[1:], 8)
    else:
        n = int(digits)
    n = -n if sign == "-" else n
    if -_INT64 <= n < _INT64:
        return n
    if sign == "" and n < _UINT64:  # ParseUint takes no sign
        return n
    return None


def resolve_plain(text: str):
    """An untagged plain scalar as go-yaml v2 decodes it into interface{}."""
    if text in _BOOL_NULL:
        return _BOOL_NULL[text]
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]
    first = text[:1]
    if first == ".":
        if _DOT_FLOAT.fullmatch(text):
            return float(text)
        return text
    if first.isdigit() or first in ("+", "-"):
        # a timestamp (2001-12-14) stays a string, as go-yaml v2 keeps it in interface{}: it is
        # neither an integer nor a float below
        plain = text.replace("_", "")
        n = _go_int(plain)
        if n is not None:
            return n
        if _YAML_FLOAT.fullmatch(plain):
            f = float(plain)
            return text if math.isinf(f) else f  # Go: ErrRange, so it stays a string
    return text


_CORE = "tag:yaml.org,2002:"


def _scalar(ev, path: str):
    tag = ev.tag
    if tag is None:
        return resolve_plain(ev.value) if ev.implicit[0] and not ev.implicit[1] and ev.style in (None, "") \
            else ev.value
    if tag in ("!", _CORE + "str"):
        return ev.value
    kinds = {_CORE + "int": int, _CORE + "float": float, _CORE + "bool": bool, _CORE + "null": type(None)}
    if tag in kinds:
        v = resolve_plain(ev.value)
        want = kinds[tag]
        if want is float and type(v) is int:
            v = float(v)
        if type(v) is not want:
            raise ReadError(f"cannot decode {ev.value!r} as {tag[len(_CORE):]}", ev.start_mark.line + 1, path)
        return v
    raise ReadError(f"unsupported YAML tag {tag!r} (only YAML's core tags are read)", ev.start_mark.line + 1, path)


# --- building values from events --------------------------------------------------------

class _Frame:
    __slots__ = ("value", "path", "anchor", "count", "key", "key_line", "lines", "merges", "line")

    def __init__(self, value, path, anchor, line):
        self.value, self.path, self.anchor, self.line = value, path, anchor, line
        self.count = 1
        self.key = _NOKEY
        self.key_line = None
        self.lines: dict = {}
        self.merges: list = []


_NOKEY = object()
_MERGE = object()


@dataclass
class _Doc:
    index: int
    start: int
    line: int
    anchors: dict = field(default_factory=dict)
    alias_used: int = 0
    stack: list = field(default_factory=list)
    root: object = None
    has_root: bool = False


def read_yaml(text: str, max_document_chars: int, max_depth: int = MAX_DEPTH,
              alias_budget: int = ALIAS_BUDGET) -> list[RawDocument]:
    docs: list[RawDocument] = []
    doc: _Doc | None = None
    index = -1
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            if isinstance(ev, yaml.DocumentStartEvent):
                index += 1
                doc = _Doc(index, ev.start_mark.index, ev.start_mark.line + 1)
                continue
            if isinstance(ev, yaml.DocumentEndEvent):
                if ev.end_mark.index - doc.start > max_document_chars:
                    raise ReadError(f"document is larger than {max_document_chars} bytes", doc.line, document=index)
                docs.append(RawDocument(doc.root if doc.has_root else None, index, doc.line))
                doc = None
                continue
            if doc is None:
                continue  # stream start/end
            if ev.start_mark.index - doc.start > max_document_chars:
                raise ReadError(f"document is larger than {max_document_chars} bytes", doc.line, document=index)
            _event(doc, ev, max_depth, alias_budget)
    except ReadError as e:
        if e.document is None:
            e.document = index if index >= 0 else 0
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = e.problem or e.context or str(e)
        raise ReadError(f"error converting YAML to JSON: yaml: {problem}", line, document=max(index, 0)) from None
    except yaml.YAMLError as e:
        raise ReadError(f"error converting YAML to JSON: yaml: {e}", document=max(index, 0)) from None
    return docs


def _child_path(frame: _Frame | None) -> Path:
    if frame is None:
        return Path("")
    if isinstance(frame.value, list):
        return frame.path.index(len(frame.value))
    return frame.path.child(frame.key) if isinstance(frame.key, str) else frame.path


def _event(doc: _Doc, ev, max_depth: int, alias_budget: int) -> None:
    line = ev.start_mark.line + 1
    top = doc.stack[-1] if doc.stack else None
    expecting_key = top is not None and isinstance(top.value, dict) and top.key is _NOKEY
    if isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
        frame = doc.stack.pop()
        if isinstance(frame.value, dict):
            _apply_merges(frame)
        _finish(doc, frame.value, frame.count, frame.anchor, frame.path, line)
        return
    path = _child_path(top)
    if expecting_key:
        _key(doc, top, ev, line)
        return
    if isinstance(ev, yaml.AliasEvent):
        if ev.anchor not in doc.anchors:
            if any(f.anchor == ev.anchor for f in doc.stack):
                raise ReadError(f"alias *{ev.anchor} refers to a value that contains it", line, path)
            raise ReadError(f"unknown anchor {ev.anchor!r} referenced", line, path)
        value, n = doc.anchors[ev.anchor]
        doc.alias_used += n
        if doc.alias_used > alias_budget:
            raise ReadError(f"aliases expand to more than {alias_budget} values (an alias bomb?)", line, path)
        _finish(doc, copy.deepcopy(value), n, None, path, line)
        return
    if isinstance(ev, yaml.ScalarEvent):
        _finish(doc, _scalar(ev, path), 1, ev.anchor, path, line)
        return
    if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
        if ev.tag is not None and ev.tag not in ("!", _CORE + "map", _CORE + "seq"):
            raise ReadError(f"unsupported YAML tag {ev.tag!r} (only YAML's core tags are read)", line, path)
        if len(doc.stack) >= max_depth:
            raise ReadError(f"nesting deeper than {max_depth} levels", line)
        value = {} if isinstance(ev, yaml.MappingStartEvent) else []
        doc.stack.append(_Frame(value, path, ev.anchor, line))
        return
    raise ReadError(f"unexpected YAML event {type(ev).__name__}", line, path)


def _key(doc: _Doc, frame: _Frame, ev, line: int) -> None:
    """The next event in a mapping where a key is due."""
    if isinstance(ev, yaml.ScalarEvent):
        if ev.tag is None and ev.implicit[0] and ev.value == "<<" or ev.tag == _CORE + "merge":
            frame.key, frame.key_line = _MERGE, line
            return
        k = _scalar(ev, frame.path)
        if ev.anchor:
            doc.anchors[ev.anchor] = (k, 1)
    elif isinstance(ev, yaml.AliasEvent) and isinstance(doc.anchors.get(ev.anchor, (None,))[0], str):
        k = doc.anchors[ev.anchor][0]
    else:
        raise ReadError("mapping keys must be strings (a mapping or list cannot be a key)", line, frame.path)
    if not isinstance(k, str):
        shown = json.dumps(k) if not isinstance(k, float) else repr(k)
        raise ReadError(f"key {ev.value!r} is read as {shown}, not a string: quote it (\"{ev.value}\")",
                        line, frame.path)
    if k in frame.lines:
        raise ReadError(f"key {json.dumps(k)} already set in map (first at line {frame.lines[k]})", line,
                        frame.path.child(k))
    frame.lines[k] = line
    frame.key, frame.key_line = k, line


def _finish(doc: _Doc, value, count: int, anchor, path: str, line: int) -> None:
    """A complete value: into its parent, or the document's root."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise ReadError(f"{value} cannot be represented in JSON", line, path)
    if anchor:
        doc.anchors[anchor] = (value, count)
    if not doc.stack:
        doc.root, doc.has_root = value, True
        return
    parent = doc.stack[-1]
    parent.count += count
    if isinstance(parent.value, list):
        parent.value.append(value)
    elif parent.key is _MERGE:
        if isinstance(value, dict):
            parent.merges.append(value)
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            parent.merges.extend(value)
        else:
            raise ReadError("merge key << needs a mapping or a list of mappings", line, parent.path)
        parent.key = _NOKEY
    else:
        parent.value[parent.key] = value
        parent.key = _NOKEY


def _apply_merges(frame: _Frame) -> None:
    """`<<: *base`: keys of the merged mappings that the mapping does not set itself (the first
    merged mapping wins among them), as go-yaml v2 merges."""
    if not frame.merges:
        return
    merged: dict = {}
    for m in frame.merges:
        for k, v in m.items():
            merged.setdefault(k, copy.deepcopy(v))
    for k, v in frame.value.items():
        merged.pop(k, None)
    merged.update(frame.value)
    frame.value.clear()
    frame.value.update(merged)


# --- JSON ---------------------------------------------------------------------------------

class _Pairs(dict):
    """A JSON object whose text repeated a key (kept to report it with its path)."""
    duplicate: str = ""


def _pairs_hook(pairs):
    d = _Pairs() if len({k for k, _ in pairs}) != len(pairs) else {}
    for k, v in pairs:
        if k in d and isinstance(d, _Pairs) and not d.duplicate:
            d.duplicate = k
        d[k] = v
    return d


def _no_constant(name):
    raise ValueError(f"{name} cannot be represented in JSON")


def read_json(text: str, max_document_chars: int, max_depth: int = MAX_DEPTH) -> list[RawDocument]:
    """A stream of JSON values (one or several, whitespace between them)."""
    dec = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=_no_constant)
    docs, pos, index = [], 0, 0
    ws = re.compile(r"\s*")
    pos = ws.match(text, pos).end()
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        try:
            value, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ReadError(f"error parsing JSON: {e.msg}", e.lineno, document=index) from None
        except (ValueError, RecursionError) as e:
            raise ReadError(f"error parsing JSON: {e if isinstance(e, ValueError) else 'nesting too deep'}",
                            line, document=index) from None
        if end - pos > max_document_chars:
            raise ReadError(f"document is larger than {max_document_chars} bytes", line, document=index)
        _check_json(value, max_depth, line, index)
        docs.append(RawDocument(value, index, line))
        index += 1
        pos = ws.match(text, end).end()
    return docs


def _check_json(value, max_depth: int, line: int, index: int) -> None:
    stack = [(value, Path(""), 0)]
    while stack:
        v, path, depth = stack.pop()
        if depth > max_depth:
            raise ReadError(f"nesting deeper than {max_depth} levels", line, path, index)
        if isinstance(v, _Pairs) and v.duplicate:
            raise ReadError(f"duplicate field {json.dumps(v.duplicate)}", line, path.child(v.duplicate), index)
        if isinstance(v, float) and math.isinf(v):
            raise ReadError("number out of range", line, path, index)
        if isinstance(v, dict):
            stack.extend((x, path.child(k), depth + 1) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, path.index(i), depth + 1) for i, x in enumerate(v))


def normalize_numbers(value):
    """Floats with no fraction become ints, as Go's json.Marshal writes float64(1000) as 1000
    and the API server then reads an integer. Returns a new value (dicts that repeated a key in
    JSON become plain dicts)."""
    if isinstance(value, dict):
        return {k: normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def looks_like_json(text: str) -> bool:
    """Upstream's YAMLOrJSONDecoder: JSON when the first non-space character opens an object."""
    s = text.lstrip()
    return s.startswith("{")
