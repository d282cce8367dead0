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
            raise ConfigError(where, f"{path}.{k}", f"unknown key (expected one of {', '.join(sorted(allowed))})")


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
    for name, m in (doc.get("mirrors") or {}).items():
        p = f"mirrors.{name}"
        if not isinstance(m, dict):
            raise ConfigError(where, p, "must be a mapping")
        _check_keys(m, {"endpoint", "rewrite"}, p, where)
        eps = m.get("endpoint") or []
        if not isinstance(eps, list):
            raise ConfigError(where, f"{p}.endpoint", "must be a list")
        rewrites = []
        for pat, repl in (m.get("rewrite") or {}).items():
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
    for host, c in (doc.get("configs") or {}).items():
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
            auth = Auth(**{k: str(v) for k, v in a.items()})
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
            tls = TLS(str(t.get("ca_file") or ""), str(t.get("cert_file") or ""), str(t.get("key_file") or ""), isv)
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


def _rewrite(repo: str, rewrites) -> str:
    for pat, repl in rewrites:
        if re.search(pat, repo):
            return re.sub(pat, re.sub(r"\$(\d+)", r"\\\1", repl), repo, count=1)
    return repo


def endpoints_for(cfg: RegistriesConfig, registry: str, repository: str) -> list[Endpoint]:
    """Endpoints to try, in order: the mirrors, then the registry itself."""
    mirror = cfg.mirrors.get(registry) or cfg.mirrors.get("*")
    out = []
    default_url = DOCKER_HUB if registry == "docker.io" else f"https://{registry}"
    for url in (mirror.endpoints if mirror else ()):
        host = urlsplit(url).netloc
        out.append(Endpoint(url, host, _rewrite(repository, mirror.rewrites),
                            cfg.configs.get(host) or cfg.configs.get(registry) or HostConfig(), False))
    if not any(e.url == default_url for e in out):
        host = urlsplit(default_url).netloc
        out.append(Endpoint(default_url, host, repository,
                            cfg.configs.get(registry) or cfg.configs.get(host) or HostConfig(), True))
    return out
