"""kubelet_py.api.dump: YAML written for objects reads back the same through the go-yaml v2
reader, for every upstream example and for the strings YAML 1.1 would misread."""

from __future__ import annotations

import json
import pathlib

import pytest

from kubelet_py.api import load
from kubelet_py.api.dump import to_yaml
from kubelet_py.api.yamlread import read_yaml

EXAMPLES = pathlib.Path(__file__).parent.parent / "data" / "upstream_examples"  # ../shared/examples/upstream, copied

TRICKY = ["y", "N", "yes", "on", "Off", "true", "null", "~", "", "0777", "0o17", "0x1F", "1_000", "1e3", ".5", "+1",
          "-.inf", ".nan", "12", "2001-12-14", "1:20", "multi\nline\n", "trailing space \nx", "a: b", "- a", "#x",
          "é", "  lead"]


@pytest.mark.parametrize("value", TRICKY)
def test_strings_read_back_as_strings(value):
    text = to_yaml({"data": {"k": value}})
    assert read_yaml(text, 1 << 20)[0].value == {"data": {"k": value}}


def test_literal_block_for_multi_line_and_quotes_where_needed():
    text = to_yaml({"b": "y", "a": "line1\nline2\n", "c": "plain", "d": 5, "e": True})
    assert text == 'a: |\n  line1\n  line2\nb: "y"\nc: plain\nd: 5\ne: true\n'


def test_every_example_round_trips_through_yaml_and_json():
    for rel in sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.yaml")):
        for doc in load((EXAMPLES / rel).read_bytes(), rel):
            again = load(to_yaml(doc.obj), rel)[0].obj
            assert again == doc.obj, rel
            assert load(json.dumps(doc.obj), rel)[0].obj == doc.obj, rel
