"""The daemon's config file: keys from serve's flags, types, unknown keys, flags over the file,
and what a SIGHUP re-read applies (kubelet_py.config.file, kubelet_py.service.daemon)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from kubelet_py.config import file as cf
from kubelet_py.service.daemon import LIVE, schema_of

SCHEMA = [
    cf.KeySpec("podCidr", "pod_cidr"),
    cf.KeySpec("maxPods", "max_pods", cf.INTEGER, min=1, max=10000, live=True),
    cf.KeySpec("crashloopMax", "crashloop_max", cf.NUMBER, min=1, max=300, live=True),
    cf.KeySpec("logLevel", "log_level", cf.CHOICE, choices=("debug", "info"), live=True),
    cf.KeySpec("verbose", "verbose", cf.BOOLEAN),
    cf.KeySpec("dns", "dns", cf.STRING, multiple=True),
]


@pytest.mark.parametrize("flag,key", [("--pod-cidr", "podCidr"), ("crashloop_max", "crashloopMax"),
                                      ("--manifests", "manifests"), ("--allowed-unsafe-sysctls", "allowedUnsafeSysctls")])
def test_key_names_are_the_flags_in_camel_case(flag, key):
    assert cf.key_name(flag) == key


def test_values_by_parameter_name():
    text = "podCidr: 10.9.0.0/16\nmaxPods: 20\ncrashloopMax: 5\nlogLevel: debug\nverbose: true\ndns: [a, b]\n"
    assert cf.load_text(text, "/etc/k.yaml", SCHEMA) == {
        "pod_cidr": "10.9.0.0/16", "max_pods": 20, "crashloop_max": 5.0, "log_level": "debug", "verbose": True,
        "dns": ("a", "b")}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_sets_nothing(text):
    assert cf.load_text(text, "c.yaml", SCHEMA) == {}


@pytest.mark.parametrize("text,problem", [
    ("maxPods: '20'\n", "key 'maxPods': expected an integer from 1 to 10000, got string '20'"),
    ("maxPods: 0\n", "key 'maxPods': expected an integer from 1 to 10000, got number 0"),
    ("maxPods: true\n", "key 'maxPods': expected an integer from 1 to 10000, got boolean true"),
    ("maxPods: 2.5\n", "key 'maxPods': expected an integer from 1 to 10000, got number 2.5"),
    ("crashloopMax: 301\n", "key 'crashloopMax': expected a number from 1 to 300, got number 301"),
    ("podCidr: 10\n", "key 'podCidr': expected a string, got number 10"),
    ("podCidr:\n", "key 'podCidr': expected a string, got null"),
    ("logLevel: trace\n", "key 'logLevel': expected one of 'debug', 'info', got string 'trace'"),
    ("logLevel: off\n", "key 'logLevel': expected one of 'debug', 'info', got boolean false"),  # YAML 1.1
    ("verbose: 1\n", "key 'verbose': expected a boolean, got number 1"),
    ("dns: a\n", "key 'dns': expected a list, each a string, got string 'a'"),
    ("dns: [a, 1]\n", "key 'dns': expected a string, got number 1"),
    ("[1, 2]\n", "expected a mapping of keys to values at the top, got a list"),
    ("a: 1\n---\nb: 2\n", "expected one YAML document, found 2"),
])
def test_wrong_types_name_the_key_the_type_and_the_file(text, problem):
    with pytest.raises(cf.ConfigFileError) as e:
        cf.load_text(text, "/etc/kubelet-py/config.yaml", SCHEMA)
    assert str(e.value) == f"/etc/kubelet-py/config.yaml: {problem}"


def test_unknown_keys_are_errors_naming_key_and_file_all_at_once():
    with pytest.raises(cf.ConfigFileError) as e:
        cf.load_text("pod-cidr: x\nbridgeName: y\nmaxPods: no\n", "c.yaml", SCHEMA)
    lines = str(e.value).splitlines()
    assert lines[0] == "c.yaml: unknown key 'pod-cidr' (did you mean 'podCidr'?)"
    assert lines[1].startswith("c.yaml: unknown key 'bridgeName'; known keys: crashloopMax, dns, logLevel, maxPods")
    assert lines[2] == "c.yaml: key 'maxPods': expected an integer from 1 to 10000, got boolean false"


def test_yaml_hazards_are_refused_with_the_line():
    with pytest.raises(cf.ConfigFileError) as e:
        cf.load_text("maxPods: 1\nmaxPods: 2\n", "c.yaml", SCHEMA)
    assert str(e.value).startswith("c.yaml: line 2: ") and "maxPods" in str(e.value)


def test_flags_override_the_file():
    assert cf.effective({"max_pods": 5, "pod_cidr": "a"}, {"max_pods": 7}) == {"max_pods": 7, "pod_cidr": "a"}


def test_reload_applies_live_keys_and_names_the_others():
    defaults = {"pod_cidr": "10.244.0.0/16", "max_pods": 110, "crashloop_max": None, "log_level": "info",
                "verbose": False, "dns": ()}
    current = dict(defaults, max_pods=20)
    plan = cf.plan_reload(current, {"max_pods": 30, "pod_cidr": "10.1.0.0/16", "log_level": "info"}, SCHEMA, defaults)
    assert plan.live == {"max_pods": 30}
    assert plan.restart == ("podCidr",)
    # a key taken out of the file goes back to the flag's default
    plan = cf.plan_reload(current, {}, SCHEMA, defaults)
    assert plan.live == {"max_pods": 110} and plan.restart == ()
    assert cf.plan_reload(current, dict(current), SCHEMA, defaults) == cf.Reload({}, ())


def serve_command() -> click.Command:
    from kubelet_py.cli import cli
    return cli.commands["serve"]


def test_every_flag_of_serve_is_a_key():
    serve = serve_command()
    schema = {s.key: s for s in schema_of(serve)}
    flags = [p for p in serve.params if isinstance(p, click.Option) and p.name != "config"]
    assert sorted(s.param for s in schema.values()) == sorted(p.name for p in flags)
    assert schema["podCidr"].kind == cf.STRING and schema["maxPods"].kind == cf.INTEGER
    assert (schema["maxPods"].min, schema["maxPods"].max) == (1, 10000)
    assert schema["crashloopMax"].kind == cf.NUMBER
    assert schema["logLevel"].choices == ("debug", "info", "warning", "error")
    assert {s.param for s in schema.values() if s.live} == set(LIVE)


def _parse(args: list[str]) -> click.Context:
    from kubelet_py.cli import cli
    with cli.make_context("kubelet-py", ["--root", "/tmp/x", "serve"]) as parent:
        return serve_command().make_context("serve", args, parent=parent)


def test_the_file_sets_serves_defaults_and_flags_win(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("podCidr: 10.77.0.0/16\nmaxPods: 12\nbridge: kpyfile\nallowedUnsafeSysctls: kernel.msg*\n")
    ctx = _parse(["--config", str(cfg), "--bridge", "kpyflag"])
    assert ctx.params["pod_cidr"] == "10.77.0.0/16"
    assert ctx.params["max_pods"] == 12
    assert ctx.params["bridge"] == "kpyflag"
    assert ctx.params["allowed_unsafe_sysctls"] == "kernel.msg*"
    assert ctx.params["chain_prefix"] == "KPY"  # not in the file: the flag's default


def test_a_named_config_file_must_exist(tmp_path):
    with pytest.raises(click.ClickException) as e:
        _parse(["--config", str(tmp_path / "nope.yaml")])
    assert str(e.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_serve_with_a_bad_file_exits_before_it_starts(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("maxPods: many\npodCIDR: 10.0.0.0/8\n")
    p = subprocess.run([sys.executable, "-m", "kubelet_py", "--root", str(tmp_path / "r"), "--run-root",
                        str(tmp_path / "run"), "serve", "--config", str(cfg)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    assert f"{cfg}: key 'maxPods': expected an integer from 1 to 10000, got string 'many'" in p.stderr
    assert f"{cfg}: unknown key 'podCIDR' (did you mean 'podCidr'?)" in p.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_re_reading_an_unchanged_setup_changes_nothing(tmp_path):
    from kubelet_py.service.daemon import flag_defaults
    serve = serve_command()
    defaults = flag_defaults(serve)
    assert defaults["manifests"] is None and defaults["crashloop_max"] is None and defaults["max_pods"] == 110
    ctx = _parse(["--config", os.devnull, "--bridge", "kpyx"])
    schema = schema_of(serve)
    assert cf.plan_reload(ctx.params, {**defaults, "bridge": "kpyx"}, schema, defaults) == cf.Reload({}, ())
    plan = cf.plan_reload(ctx.params, {**defaults, "bridge": "kpyx", "max_pods": 3, "manifests": "/m"}, schema,
                          defaults)
    assert plan == cf.Reload({"max_pods": 3}, ("manifests",))


def test_relative_paths_are_relative_to_the_file():
    schema = [cf.KeySpec("manifests", "manifests", path=True), cf.KeySpec("name", "name")]
    assert cf.load_text("manifests: pods\nname: x/y\n", "/etc/kubelet-py/config.yaml", schema) == \
        {"manifests": "/etc/kubelet-py/pods", "name": "x/y"}
    assert cf.load_text("manifests: ../m\n", "/etc/kubelet-py/config.yaml", schema) == {"manifests": "/etc/m"}
    assert cf.load_text("manifests: /srv/m\n", "/etc/kubelet-py/config.yaml", schema) == {"manifests": "/srv/m"}
    serve = {s.key: s for s in schema_of(serve_command())}
    assert serve["manifests"].path and serve["seccompProfileRoot"].path and not serve["podCidr"].path


def test_the_default_path_is_the_same_in_the_flag_and_the_loader():
    from kubelet_py.service.daemon import DEFAULT_CONFIG
    assert DEFAULT_CONFIG == cf.DEFAULT_PATH == "/etc/kubelet-py/config.yaml"
