"""kubelet_py.api.yamlread: YAML 1.1 scalars as go-yaml v2 reads them, JSON streams, and the
hazards refused with the line and field path."""

from __future__ import annotations

import re

import pytest

from kubelet_py.api.yamlread import ReadError, normalize_numbers, read_json, read_yaml, resolve_plain

CAP = 3 << 20


def one(text: str):
    docs = read_yaml(text, CAP)
    assert len(docs) == 1
    return docs[0].value


@pytest.mark.parametrize("text,expected", [
    ("0777", 511), ("0o17", 15), ("0x1F", 31), ("0b101", 5), ("1_000", 1000), ("+12", 12), ("-7", -7),
    ("0", 0), ("09", 9.0), ("1e3", 1000.0), (".5", 0.5), ("-.5", -0.5), ("1.", 1.0),
    ("yes", True), ("Yes", True), ("YES", True), ("y", True), ("Y", True), ("on", True), ("ON", True),
    ("true", True), ("True", True), ("no", False), ("n", False), ("off", False), ("Off", False), ("FALSE", False),
    ("null", None), ("~", None), ("", None), ("NULL", None),
    ("yEs", "yEs"), ("1:20", "1:20"), ("2001-12-14", "2001-12-14"), ("0x", "0x"), ("1_", 1), ("_1", "_1"),
    ("99999999999999999999999", 1e23), ("18446744073709551615", 18446744073709551615),
    ("-9223372036854775808", -9223372036854775808), ("1" + "0" * 400, "1" + "0" * 400),
    ("0777abc", "0777abc"), ("+", "+"), (".", "."), ("..5", "..5"),
])
def test_plain_scalars_resolve_as_go_yaml_v2(text, expected):
    got = resolve_plain(text)
    assert got == expected and type(got) is type(expected)


def test_quoted_and_tagged_scalars_are_strings():
    v = one('a: "yes"\nb: \'0777\'\nc: !!str 12\nd: ! on\ne: |\n  0777\n')
    assert v == {"a": "yes", "b": "0777", "c": "12", "d": "on", "e": "0777\n"}


def test_core_tags_are_checked():
    assert one("a: !!int 0x10\nb: !!float 2\nc: !!bool off\n") == {"a": 16, "b": 2.0, "c": False}
    with pytest.raises(ReadError, match="cannot decode 'abc' as int") as e:
        read_yaml("a: !!int abc\n", CAP)
    assert (e.value.line, e.value.path) == (1, "a")


def test_unknown_tags_are_refused():
    with pytest.raises(ReadError, match="unsupported YAML tag '!foo'"):
        read_yaml("a:\n  b: !foo x\n", CAP)
    with pytest.raises(ReadError, match="unsupported YAML tag 'tag:yaml.org,2002:python/object"):
        read_yaml("a: !!python/object:os.system {}\n", CAP)


def test_documents_keep_their_index_and_line():
    docs = read_yaml("a: 1\n---\n---\nb: 2\n", CAP)
    assert [(d.index, d.value, d.line) for d in docs] == [(0, {"a": 1}, 1), (1, None, 2), (2, {"b": 2}, 3)]


def test_kyaml_flow_style_with_trailing_commas():
    assert one('---\n{\n  a: "x",\n  b: [1, 2,],\n  c: {d: 0777,},\n}\n') == {"a": "x", "b": [1, 2], "c": {"d": 511}}


def test_duplicate_key_names_key_line_and_path():
    with pytest.raises(ReadError) as e:
        read_yaml("spec:\n  containers:\n  - name: a\n    image: x\n    name: b\n", CAP)
    assert e.value.detail == 'key "name" already set in map (first at line 3)'
    assert (e.value.line, e.value.path) == (5, "spec.containers[0].name")


@pytest.mark.parametrize("key,shown", [("1", "1"), ("on", "true"), ("n", "false"), ("null", "null"), ("1.5", "1.5")])
def test_non_string_keys_are_refused(key, shown):
    with pytest.raises(ReadError) as e:
        read_yaml(f"data:\n  {key}: x\n", CAP)
    assert e.value.detail == f'key {key!r} is read as {shown}, not a string: quote it ("{key}")'
    assert (e.value.line, e.value.path) == (2, "data")


def test_quoted_keys_are_strings():
    assert one('data:\n  "on": a\n  "1": b\n') == {"data": {"on": "a", "1": "b"}}


def test_collection_keys_are_refused():
    with pytest.raises(ReadError, match="mapping keys must be strings"):
        read_yaml("? [a, b]\n: c\n", CAP)


def test_aliases_and_merge_keys():
    v = one("base: &b {p: 1, q: 2}\nlist: &l [x]\nd:\n  <<: *b\n  q: 3\ne: *l\nf:\n  <<: [{r: 1}, {r: 2, s: 2}]\n")
    assert v["d"] == {"p": 1, "q": 3}
    assert v["e"] == ["x"]
    assert v["f"] == {"r": 1, "s": 2}


def test_alias_copies_are_independent():
    v = one("a: &a {x: [1]}\nb: *a\n")
    v["b"]["x"].append(2)
    assert v["a"] == {"x": [1]}


def test_alias_bomb_is_refused_within_the_budget():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ReadError, match=r"aliases expand to more than 10000 values \(an alias bomb\?\)") as e:
        read_yaml("\n".join(lines) + "\n", CAP)
    assert e.value.line == 4  # d copies c ten times: 10 * 1111 values, past the budget


def test_small_alias_use_is_fine_and_budget_is_a_parameter():
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    assert one(text)["b"] == [[1, 2, 3], [1, 2, 3]]
    with pytest.raises(ReadError, match="more than 5 values"):
        read_yaml(text, CAP, alias_budget=5)


def test_recursive_alias_is_refused():
    with pytest.raises(ReadError, match=r"alias \*a refers to a value that contains it") as e:
        read_yaml("a: &a\n  b: [*a]\n", CAP)
    assert e.value.path == "a.b[0]"


def test_unknown_anchor_is_refused():
    with pytest.raises(ReadError, match="unknown anchor 'zz'"):
        read_yaml("a: *zz\n", CAP)


def test_deep_nesting_is_refused_without_recursion():
    with pytest.raises(ReadError, match="nesting deeper than 200 levels") as e:
        read_yaml("a: " + "[" * 300, CAP)
    assert e.value.line == 1
    with pytest.raises(ReadError, match="nesting"):  # libyaml's own cap may come first
        read_yaml("a: " + "[" * 100_000, CAP)
    assert one("a: " + "[" * 50 + "]" * 50 + "\n")["a"] is not None


def test_nan_and_inf_are_refused():
    for text in ("a: .nan\n", "a: -.inf\n", "a: [.Inf]\n"):
        with pytest.raises(ReadError, match="cannot be represented in JSON"):
            read_yaml(text, CAP)


def test_document_size_cap():
    big = "a: " + "x" * 5000 + "\n"
    assert read_yaml(big, 6000)
    with pytest.raises(ReadError, match="document is larger than 4000 bytes") as e:
        read_yaml("small: 1\n---\n" + big, 4000)
    assert e.value.document == 1


def test_syntax_error_has_line():
    with pytest.raises(ReadError) as e:
        read_yaml("a: 1\nb: c: d\n", CAP)
    assert e.value.line == 2
    assert re.fullmatch(r"error converting YAML to JSON: yaml: mapping values are not allowed (here|in this context)",
                        e.value.detail)  # libyaml's words, or pyyaml's own without it


def test_json_stream_and_duplicates():
    docs = read_json('{"a": 1}\n{"b": [1.0, 2.5]}', CAP)
    assert [d.value for d in docs] == [{"a": 1}, {"b": [1.0, 2.5]}]
    assert [d.line for d in docs] == [1, 2]
    with pytest.raises(ReadError, match='duplicate field "name"') as e:
        read_json('{"spec": {"name": 1, "name": 2}}', CAP)
    assert e.value.path == "spec.name"


@pytest.mark.parametrize("text,message", [
    ('{"a": NaN}', "NaN cannot be represented"), ('{"a": 1e999}', "number out of range"),
    ('{"a": ' + "1" * 5000 + "}", "error parsing JSON"), ('{"a": 1', "error parsing JSON"),
    ("[" * 300 + "]" * 300, "nesting deeper than 200 levels"),
])
def test_json_hazards(text, message):
    with pytest.raises(ReadError, match=message):
        read_json(text, CAP)


def test_normalize_numbers_makes_whole_floats_ints_and_copies():
    src = {"a": [1.0, 2.5, 1e21, 3], "b": {"c": 1e3}}
    out = normalize_numbers(src)
    assert out == {"a": [1, 2.5, 1e21, 3], "b": {"c": 1000}}
    assert type(out["a"][0]) is int and type(out["a"][2]) is float
    assert src["a"][0] == 1.0 and type(src["a"][0]) is float
