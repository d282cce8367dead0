"""Pure parts of pulling: the WWW-Authenticate challenge parser and registries.yaml (k3s format)
parsing and endpoint selection."""

from __future__ import annotations

import pytest

from runtime.image.errors import ConfigError
from runtime.image.registries import (DOCKER_HUB, Auth, HostConfig, TLS, endpoints_for, load_registries,
                                      parse_registries)
from runtime.image.registry import parse_challenge

W = "/etc/kubelet-py/registries.yaml"


# ---- parse_challenge -------------------------------------------------------------------------

def test_challenge_bearer_docker_hub():
    h = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    assert parse_challenge(h) == ("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                             "scope": "repository:library/busybox:pull"})


def test_challenge_basic_and_scheme_case():
    assert parse_challenge('Basic realm="kubelet-py-test"') == ("basic", {"realm": "kubelet-py-test"})
    assert parse_challenge('BASIC realm="r"')[0] == "basic"
    assert parse_challenge("Basic") == ("basic", {})
    assert parse_challenge("") == ("", {})


def test_challenge_quoting_commas_escapes_and_spaces():
    h = r'Bearer  realm="https://a/t?x=1,y=2" , scope="repository:a/b:pull,push", error="say \"no\"",Service=reg'
    scheme, p = parse_challenge(h)
    assert scheme == "bearer"
    assert p == {"realm": "https://a/t?x=1,y=2", "scope": "repository:a/b:pull,push", "error": 'say "no"',
                 "service": "reg"}


def test_challenge_unquoted_values():
    assert parse_challenge("Bearer realm=https://a/token,service=reg") == \
        ("bearer", {"realm": "https://a/token", "service": "reg"})


# ---- parse_registries --------------------------------------------------------------------------

def test_empty_and_null_documents():
    for doc in (None, {}, {"mirrors": None, "configs": None}):
        cfg = parse_registries(doc, W)
        assert cfg.mirrors == {} and cfg.configs == {}


def test_mirrors_endpoints_and_rewrites():
    cfg = parse_registries({"mirrors": {"docker.io": {
        "endpoint": ["http://127.0.0.1:5000/", "mirror.example.com", "https://m2.example.com/prefix"],
        "rewrite": {"^library/(.*)": "mirrored/$1"}}}}, W)
    m = cfg.mirrors["docker.io"]
    assert m.endpoints == ("http://127.0.0.1:5000", "https://mirror.example.com", "https://m2.example.com/prefix")
    assert m.rewrites == (("^library/(.*)", "mirrored/$1"),)


def test_configs_auth_and_tls():
    cfg = parse_registries({"configs": {
        "127.0.0.1:5443": {"auth": {"username": "u", "password": "p"},
                           "tls": {"ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem"}},
        "https://reg.example.com": {"auth": {"auth": "dTpw"}, "tls": {"insecure_skip_verify": True}},
        "blank.example.com": {"auth": {"username": "u", "password": None}},
    }}, W)
    assert cfg.configs["127.0.0.1:5443"] == HostConfig(Auth("u", "p"), TLS("/ca.pem", "/c.pem", "/k.pem", False))
    # a URL as the key means its host
    assert cfg.configs["reg.example.com"] == HostConfig(Auth(auth="dTpw"), TLS(insecure_skip_verify=True))
    # an empty `password:` is an empty password, not the string "None"
    assert cfg.configs["blank.example.com"].auth.password == ""


@pytest.mark.parametrize("doc,field", [
    ({"mirror": {}}, "mirror"),
    ({"mirrors": {"docker.io": {"endpoints": ["https://x"]}}}, "mirrors.docker.io.endpoints"),
    ({"configs": {"h:1": {"credentials": {}}}}, "configs.h:1.credentials"),
    ({"configs": {"h:1": {"auth": {"user": "u"}}}}, "configs.h:1.auth.user"),
    ({"configs": {"h:1": {"tls": {"ca": "/x"}}}}, "configs.h:1.tls.ca"),
])
def test_unknown_keys_name_the_field(doc, field):
    with pytest.raises(ConfigError) as e:
        parse_registries(doc, W)
    assert e.value.field == field
    assert str(e.value).startswith(f"{W}: {field}: unknown key")


@pytest.mark.parametrize("doc,field,why", [
    ([], "(document)", "mapping"),
    ({"mirrors": ["docker.io"]}, "mirrors", "mapping"),
    ({"configs": ["h"]}, "configs", "mapping"),
    ({"mirrors": {"docker.io": "https://x"}}, "mirrors.docker.io", "mapping"),
    ({"mirrors": {"docker.io": {"endpoint": "https://x"}}}, "mirrors.docker.io.endpoint", "list"),
    ({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}, "mirrors.docker.io.endpoint[0]", "http(s) URL"),
    ({"mirrors": {"docker.io": {"endpoint": [""]}}}, "mirrors.docker.io.endpoint[0]", "non-empty"),
    ({"mirrors": {"docker.io": {"rewrite": ["^a"]}}}, "mirrors.docker.io.rewrite", "mapping"),
    ({"mirrors": {"docker.io": {"rewrite": {"(": "x"}}}}, "mirrors.docker.io.rewrite", "bad pattern"),
    ({"mirrors": {"docker.io": {"rewrite": {"a": 1}}}}, "mirrors.docker.io.rewrite.a", "string"),
    ({"configs": {"h": {"auth": "u:p"}}}, "configs.h.auth", "mapping"),
    ({"configs": {"h": {"auth": {"password": ["p"]}}}}, "configs.h.auth.password", "string"),
    ({"configs": {"h": {"tls": {"cert_file": "/c"}}}}, "configs.h.tls", "go together"),
    ({"configs": {"h": {"tls": {"insecure_skip_verify": "yes"}}}}, "configs.h.tls.insecure_skip_verify", "true or false"),
])
def test_bad_values_name_the_field(doc, field, why):
    with pytest.raises(ConfigError) as e:
        parse_registries(doc, W)
    assert e.value.field == field and why in str(e.value)


def test_load_registries_file(tmp_path):
    assert load_registries(str(tmp_path / "absent.yaml")).mirrors == {}
    assert load_registries(None).configs == {}
    p = tmp_path / "r.yaml"
    p.write_text('mirrors:\n  "127.0.0.1:5000":\n    endpoint: ["http://127.0.0.1:5000"]\n')
    assert load_registries(str(p)).mirrors["127.0.0.1:5000"].endpoints == ("http://127.0.0.1:5000",)
    p.write_text("mirrors: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_registries(str(p))


# ---- endpoints_for ------------------------------------------------------------------------------

def _eps(doc, registry, repo):
    return [(e.url, e.repository, e.is_default) for e in endpoints_for(parse_registries(doc, W), registry, repo)]


def test_no_mirror_means_https_to_the_registry():
    assert _eps({}, "registry.example.com:5000", "a/b") == [("https://registry.example.com:5000", "a/b", True)]
    assert _eps({}, "docker.io", "library/busybox") == [(DOCKER_HUB, "library/busybox", True)]


def test_mirrors_first_then_the_default_endpoint_without_rewrites():
    doc = {"mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000", "https://m.example.com"],
                                     "rewrite": {"^library/(.*)": "mirrored/$1"}}}}
    assert _eps(doc, "docker.io", "library/busybox") == [
        ("http://127.0.0.1:5000", "mirrored/busybox", False),
        ("https://m.example.com", "mirrored/busybox", False),
        (DOCKER_HUB, "library/busybox", True),
    ]
    assert _eps(doc, "docker.io", "other/busybox")[0] == ("http://127.0.0.1:5000", "other/busybox", False)


def test_rewrite_references():
    def rw(pat, repl, repo="library/busybox"):
        return _eps({"mirrors": {"docker.io": {"endpoint": ["https://m"], "rewrite": {pat: repl}}}},
                    "docker.io", repo)[0][1]
    assert rw("^library/(.*)", "mirrored/$1") == "mirrored/busybox"
    assert rw("^library/(.*)", "mirrored/${1}-x") == "mirrored/busybox-x"
    assert rw("^(?P<ns>[^/]+)/(?P<img>.*)", "$img/from-$ns") == "busybox/from-library"
    assert rw("^library/(.*)", "m/$1$$") == "m/busybox$"  # $$ is a literal $
    assert rw("^library/(.*)", r"m\1/$1") == r"m\1/busybox"  # backslashes are literal, as in Go
    assert rw("^library/(.*)", "m/$2") == "m/"  # an absent group is empty, as in Go
    # the first pattern that matches wins; no match leaves the name alone
    doc = {"mirrors": {"docker.io": {"endpoint": ["https://m"], "rewrite": {"^x/(.*)": "y/$1", "^library/(.*)": "z/$1"}}}}
    assert _eps(doc, "docker.io", "library/busybox")[0][1] == "z/busybox"
    assert _eps(doc, "docker.io", "q/busybox")[0][1] == "q/busybox"


def test_wildcard_mirror_applies_to_registries_without_their_own_entry():
    doc = {"mirrors": {"*": {"endpoint": ["https://cache.local"]},
                       "quay.io": {"endpoint": ["https://quay-mirror.local"]}}}
    assert _eps(doc, "ghcr.io", "a/b") == [("https://cache.local", "a/b", False), ("https://ghcr.io", "a/b", True)]
    assert _eps(doc, "quay.io", "a/b")[0] == ("https://quay-mirror.local", "a/b", False)


def test_mirror_that_is_the_registry_itself_is_tried_once():
    doc = {"mirrors": {"127.0.0.1:5443": {"endpoint": ["https://127.0.0.1:5443/"]}}}
    assert _eps(doc, "127.0.0.1:5443", "kpy/busybox") == [("https://127.0.0.1:5443", "kpy/busybox", False)]
    doc = {"mirrors": {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:5000"]}}}
    assert [u for u, _, _ in _eps(doc, "127.0.0.1:5000", "a")] == ["http://127.0.0.1:5000", "https://127.0.0.1:5000"]


def test_configs_follow_the_endpoint_host():
    doc = {"mirrors": {"docker.io": {"endpoint": ["https://mirror.local:5000"]},
                       "reg.example.com": {"endpoint": ["https://reg.example.com:8443", "https://other.local"]}},
           "configs": {"mirror.local:5000": {"auth": {"username": "m", "password": "mp"}},
                       "docker.io": {"auth": {"username": "hub", "password": "hp"}},
                       "reg.example.com": {"auth": {"username": "r", "password": "rp"}, "tls": {"ca_file": "/r.pem"}}}}
    cfg = parse_registries(doc, W)
    hub = endpoints_for(cfg, "docker.io", "library/busybox")
    assert [e.config.auth.username for e in hub] == ["m", "hub"]
    assert hub[1].host == "registry-1.docker.io"
    reg = endpoints_for(cfg, "reg.example.com", "a/b")
    # the same host on another port gets the registry's config; another machine does not
    assert reg[0].config.auth == Auth("r", "rp") and reg[0].config.tls.ca_file == "/r.pem"
    assert reg[1].url == "https://other.local" and reg[1].config == HostConfig()
    assert reg[2].is_default and reg[2].config.auth == Auth("r", "rp")


def test_wildcard_config_is_the_fallback():
    doc = {"mirrors": {"docker.io": {"endpoint": ["https://mirror.local"]}},
           "configs": {"*": {"tls": {"insecure_skip_verify": True}}, "ghcr.io": {"auth": {"username": "g"}}}}
    cfg = parse_registries(doc, W)
    assert [e.config.tls.insecure_skip_verify for e in endpoints_for(cfg, "docker.io", "x/y")] == [True, True]
    (ghcr,) = endpoints_for(cfg, "ghcr.io", "x/y")
    assert ghcr.config.auth.username == "g" and ghcr.config.tls is None
