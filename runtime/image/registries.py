"""registries.yaml (pure): mirrors, rewrites, credentials and TLS, in the format k3s uses.

    mirrors:
      docker.io:
        endpoint: ["http://127.0.0.1:5000"]
        rewrite: {"^library/(.*)": "mirrored/$1"}
    configs:
      "127.0.0.1:5443":
        auth: {username: u, password: p}
        tls: {ca_file: /ca.pem, cert_file: ..., key_file: ..., insecure_skip_verify: false}

An endpoint is plain http only when its URL says `http://`; a registry with no mirror entry is
reached at `https://<registry>` (docker.io at registry-1.docker.io)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ConfigError

DOCKER_HUB = "https://registry-1.docker.io"


@dataclass(frozen=True)
class Auth:
    username: str = ""
    password: str = ""
    auth: str = ""  # base64 "user:pass", as in docker's config.json
    identity_token: str = ""


@dataclass(frozen=True)
class TLS:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class HostConfig:
    auth: Auth | None = None
    tls: TLS | None = None


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...] = ()
    rewrites: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RegistriesConfig:
    mirrors: dict = field(default_factory=dict)  # registry name (or "*") -> Mirror
    configs: dict = field(default_factory=dict)  # host[:port] -> HostConfig


@dataclass(frozen=True)
class Endpoint:
    url: str  # scheme://host[:port][/prefix], no trailing slash
    host: str  # host[:port], the key for `configs`
    repository: str  # repository path as this endpoint names it (rewrites applied)
    config: HostConfig
    is_default: bool  # the registry itself rather than a mirror


def _check_keys(d: dict, allowed: set, path: str, where: str) -> None:
    for k in d:
        if k not in allowed:
            raise ConfigError(where, f"{path}.{k}" if path else str(k),
                              f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _mapping(v: object, where: str, path: str) -> dict:
    """`v` as a mapping; an absent (null) section is an empty one."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(where, path, "must be a mapping")
    return v


def _text(v: object, where: str, path: str) -> str:
    """A string setting; null (`password:` left empty) is "", never "None"."""
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        raise ConfigError(where, path, "must be a string")
    return str(v)


def _endpoint_url(raw: object, where: str, path: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(where, path, "must be a non-empty string")
    url = raw if "://" in raw else f"https://{raw}"
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ConfigError(where, path, f"{raw!r} is not an http(s) URL")
    return url.rstrip("/")


def parse_registries(doc: object, where: str) -> RegistriesConfig:
    if doc is None:
        return RegistriesConfig()
    if not isinstance(doc, dict):
        raise ConfigError(where, "(document)", "must be a mapping")
    _check_keys(doc, {"mirrors", "configs"}, "", where)
    mirrors = {}
    for name, m in _mapping(doc.get("mirrors"), where, "mirrors").items():
        p = f"mirrors.{name}"
        if not isinstance(m, dict):
            raise ConfigError(where, p, "must be a mapping")
        _check_keys(m, {"endpoint", "rewrite"}, p, where)
        eps = m.get("endpoint") or []
        if not isinstance(eps, list):
            raise ConfigError(where, f"{p}.endpoint", "must be a list")
        rewrites = []
        for pat, repl in _mapping(m.get("rewrite"), where, f"{p}.rewrite").items():
            pat = str(pat)
            try:
                re.compile(pat)
            except re.error as e:
                raise ConfigError(where, f"{p}.rewrite", f"bad pattern {pat!r}: {e}") from None
            if not isinstance(repl, str):
                raise ConfigError(where, f"{p}.rewrite.{pat}", "must be a string")
            rewrites.append((pat, repl))
        mirrors[str(name)] = Mirror(tuple(_endpoint_url(e, where, f"{p}.endpoint[{i}]") for i, e in enumerate(eps)),
                                    tuple(rewrites))
    configs = {}
    for host, c in _mapping(doc.get("configs"), where, "configs").items():
        p = f"configs.{host}"
        if not isinstance(c, dict):
            raise ConfigError(where, p, "must be a mapping")
        _check_keys(c, {"auth", "tls"}, p, where)
        auth = tls = None
        if c.get("auth") is not None:
            a = c["auth"]
            if not isinstance(a, dict):
                raise ConfigError(where, f"{p}.auth", "must be a mapping")
            _check_keys(a, {"username", "password", "auth", "identity_token"}, f"{p}.auth", where)
            auth = Auth(**{k: _text(v, where, f"{p}.auth.{k}") for k, v in a.items()})
        if c.get("tls") is not None:
            t = c["tls"]
            if not isinstance(t, dict):
                raise ConfigError(where, f"{p}.tls", "must be a mapping")
            _check_keys(t, {"ca_file", "cert_file", "key_file", "insecure_skip_verify"}, f"{p}.tls", where)
            if bool(t.get("cert_file")) != bool(t.get("key_file")):
                raise ConfigError(where, f"{p}.tls", "cert_file and key_file go together")
            isv = t.get("insecure_skip_verify", False)
            if not isinstance(isv, bool):
                raise ConfigError(where, f"{p}.tls.insecure_skip_verify", "must be true or false")
            tls = TLS(*(_text(t.get(k), where, f"{p}.tls.{k}") for k in ("ca_file", "cert_file", "key_file")), isv)
        key = str(host)
        if "://" in key:
            key = urlsplit(key).netloc
        configs[key] = HostConfig(auth, tls)
    return RegistriesConfig(mirrors, configs)


def load_registries(path: str | None) -> RegistriesConfig:
    """Read `path`; an absent file means no mirrors and no credentials."""
    if not path or not os.path.exists(path):
        return RegistriesConfig()
    import yaml
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(path, "(document)", f"not valid YAML: {e}") from None
    return parse_registries(doc, path)


# Go's regexp.Expand syntax, which k3s/containerd rewrites use: $1, ${1}, $name, ${name}, $$
_GO_REF = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def _expand(repl: str, m: re.Match) -> str:
    def one(ref: re.Match) -> str:
        if ref.group(3):
            return "$"
        name = ref.group(1) or ref.group(2)
        try:
            return m.group(int(name) if name.isdigit() else name) or ""
        except IndexError:  # no such group: empty, as in Go
            return ""
    return _GO_REF.sub(one, repl)


def _rewrite(repo: str, rewrites) -> str:
    """The first rewrite whose pattern matches, applied as Go's ReplaceAllString would (the
    replacement is taken literally but for `$` references)."""
    for pat, repl in rewrites:
        rx = re.compile(pat)
        if rx.search(repo):
            return rx.sub(lambda m: _expand(repl, m), repo)
    return repo


def _hostname(host: str) -> str:
    return urlsplit(f"//{host}").hostname or host


def endpoints_for(cfg: RegistriesConfig, registry: str, repository: str) -> list[Endpoint]:
    """Endpoints to try, in order: the mirrors, then the registry itself."""
    mirror = cfg.mirrors.get(registry) or cfg.mirrors.get("*")
    out = []
    default_url = DOCKER_HUB if registry == "docker.io" else f"https://{registry}"
    for url in (mirror.endpoints if mirror else ()):
        host = urlsplit(url).netloc
        # a mirror gets its own host's config; the registry's only when the mirror is that same
        # host (another port): its credentials must not go to some other machine
        conf = cfg.configs.get(host)
        if conf is None and _hostname(host) == _hostname(registry):
            conf = cfg.configs.get(registry)
        out.append(Endpoint(url, host, _rewrite(repository, mirror.rewrites),
                            conf or cfg.configs.get("*") or HostConfig(), False))
    if not any(e.url == default_url for e in out):
        host = urlsplit(default_url).netloc
        out.append(Endpoint(default_url, host, repository,
                            cfg.configs.get(registry) or cfg.configs.get(host) or cfg.configs.get("*") or HostConfig(),
                            True))
    return out
