"""The daemon's config file (`/etc/kubelet-py/config.yaml`, `serve --config PATH`): pure.

Every flag of `serve` is a key, named as the flag in camelCase (`--pod-cidr` -> `podCidr`,
`--crashloop-max` -> `crashloopMax`): the keys are derived from the command's flags, so a flag
added to `serve` is a key at once. One YAML (or JSON) mapping; an empty file means no key.

    schema = [KeySpec("podCidr", "pod_cidr", STRING), ...]   (built from serve's flags by the CLI)
    values = load_text(text, path, schema)                    -> {param name: value}

A relative path in a path-valued key (manifests, seccompProfileRoot) is taken relative to the
file's directory, as the kubelet reads its --config file.

Flags given on the command line override the file (the CLI does that; `effective` is the rule).
Unknown keys are errors naming the key and the file; a wrong type names the key, the expected
type and the file. Every error of a file is reported at once."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Iterable

DEFAULT_PATH = "/etc/kubelet-py/config.yaml"
MAX_FILE_CHARS = 1 << 20

# the kinds of value a key takes (from the flag's click type)
STRING, INTEGER, NUMBER, BOOLEAN, CHOICE = "string", "integer", "number", "boolean", "choice"


class ConfigFileError(ValueError):
    """A config file that cannot be used: every problem of it, one per line, each naming the
    file and the key."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


@dataclass(frozen=True)
class KeySpec:
    """One key of the file: the flag's parameter name and what its value must be."""
    key: str  # camelCase, as written in the file
    param: str  # the click parameter name (pod_cidr)
    kind: str = STRING
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    multiple: bool = False  # a list of values (a repeatable flag)
    live: bool = False  # applied by SIGHUP without a restart
    path: bool = False  # a file or directory: relative to the config file's directory


def key_name(flag: str) -> str:
    """`--pod-cidr` or `pod_cidr` -> `podCidr`."""
    parts = [p for p in re.split(r"[-_]", flag.lstrip("-")) if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _type_name(spec: KeySpec) -> str:
    if spec.kind == CHOICE:
        name = "one of " + ", ".join(repr(c) for c in spec.choices)
    elif spec.kind in (INTEGER, NUMBER) and (spec.min is not None or spec.max is not None):
        name = f"{'an integer' if spec.kind == INTEGER else 'a number'} from {spec.min:g} to {spec.max:g}" \
            if spec.min is not None and spec.max is not None else \
            f"{'an integer' if spec.kind == INTEGER else 'a number'} " + \
            (f">= {spec.min:g}" if spec.min is not None else f"<= {spec.max:g}")
    else:
        name = {STRING: "a string", INTEGER: "an integer", NUMBER: "a number", BOOLEAN: "a boolean"}[spec.kind]
    return f"a list, each {name}" if spec.multiple else name


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)


def check_value(spec: KeySpec, value):
    """The value for `spec`, or a ValueError saying what was expected (no file, no key: the
    caller adds them)."""
    if spec.multiple:
        if not isinstance(value, list):
            raise ValueError(f"expected {_type_name(spec)}, got {_describe(value)}")
        one = KeySpec(spec.key, spec.param, spec.kind, spec.choices, spec.min, spec.max)
        return tuple(check_value(one, v) for v in value)
    ok = {STRING: isinstance(value, str),
          CHOICE: isinstance(value, str) and value in spec.choices,
          BOOLEAN: isinstance(value, bool),
          INTEGER: isinstance(value, int) and not isinstance(value, bool),
          NUMBER: isinstance(value, (int, float)) and not isinstance(value, bool)}[spec.kind]
    if ok and spec.kind in (INTEGER, NUMBER):
        ok = (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)
    if not ok:
        raise ValueError(f"expected {_type_name(spec)}, got {_describe(value)}")
    return float(value) if spec.kind == NUMBER else value


def load_mapping(doc, path: str, schema: Iterable[KeySpec]) -> dict:
    """A parsed document -> {param: value}; ConfigFileError with every problem."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigFileError(path, [f"expected a mapping of keys to values at the top, got {_describe(doc)}"])
    by_key = {s.key: s for s in schema}
    out, problems = {}, []
    for key, value in doc.items():
        spec = by_key.get(key)
        if spec is None:
            near = [k for k in by_key if k.lower() == str(key).lower().replace("-", "").replace("_", "")]
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(sorted(by_key))}"
            problems.append(f"unknown key {key!r}{hint}")
            continue
        try:
            value = check_value(spec, value)
        except ValueError as e:
            problems.append(f"key {key!r}: {e}")
            continue
        if spec.path and value and not value.startswith("/"):
            value = posixpath.normpath(posixpath.join(posixpath.dirname(path), value))
        out[spec.param] = value
    if problems:
        raise ConfigFileError(path, problems)
    return out


def load_text(text: str, path: str, schema: Iterable[KeySpec]) -> dict:
    """The file's text -> {param: value}. YAML as the manifests are read (YAML 1.1 scalars,
    duplicate keys refused); one document."""
    from kubelet_py.api.yamlread import ReadError, read_yaml
    try:
        docs = read_yaml(text, MAX_FILE_CHARS)
    except ReadError as e:
        raise ConfigFileError(path, [f"line {e.line}: {e.detail}" if e.line else e.detail]) from None
    docs = [d for d in docs if d.value is not None]
    if len(docs) > 1:
        raise ConfigFileError(path, [f"expected one YAML document, found {len(docs)}"])
    return load_mapping(docs[0].value if docs else None, path, schema)


def effective(from_file: dict, from_flags: dict) -> dict:
    """What the daemon runs with: the file's values, each overridden by a flag given on the
    command line (or its environment variable)."""
    return {**from_file, **from_flags}


@dataclass(frozen=True)
class Reload:
    """What a re-read of the file changes: `live` is applied at once, `restart` is only logged."""
    live: dict  # param -> new value
    restart: tuple[str, ...]  # keys whose change needs a restart


def plan_reload(current: dict, new: dict, schema: Iterable[KeySpec], defaults: dict) -> Reload:
    """Compare the running values with the new effective ones (a key left out of the file falls
    back to the flag's default)."""
    live, restart = {}, []
    for spec in schema:
        old = current.get(spec.param, defaults.get(spec.param))
        value = new.get(spec.param, defaults.get(spec.param))
        if old == value:
            continue
        if spec.live:
            live[spec.param] = value
        else:
            restart.append(spec.key)
    return Reload(live, tuple(restart))
