"""Objects out as YAML that reads back the same, here and in kubectl (`get -o yaml`).

PyYAML's own dumper quotes only what PyYAML itself would misread, but Kubernetes reads YAML
as go-yaml v2 does: an unquoted string `y`, `n` or `0o17` written by PyYAML comes back as a
boolean or a number there. `to_yaml` quotes every string that go-yaml v2 (yamlread) would not
read back as that same string, writes multi-line strings as literal blocks, and sorts keys, as
kubectl's output does."""

from __future__ import annotations

import yaml

from kubelet_py.api.yamlread import resolve_plain


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str):
    style = None
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")):
        style = "|"
    else:
        back = resolve_plain(data)
        if type(back) is not str or back != data:
            style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=10**9)
