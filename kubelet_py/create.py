"""`kubelet-py create configmap|secret generic|secret tls`, as kubectl's generators build them
(`kubectl/pkg/cmd/create/create_configmap.go`, `create_secret.go`, `create_secret_tls.go`).

The objects are built purely (`configmap`, `secret_generic`, `secret_tls` take what the flags
name: literal `K=V` strings and `(key, path)` sources read through `read`), with kubectl's
messages for a bad source; the commands below only read files and post the object to the
daemon (`POST .../configmaps|secrets`, AlreadyExists when it is there)."""

from __future__ import annotations

import base64
import os
import re
from typing import Callable

import click


ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"  # kubectl's env files keep the classic IsEnvVarName rule
_UTF8_BOM = b"\xef\xbb\xbf"


class CreateError(ValueError):
    """A flag's source that kubectl refuses: one line, kubectl's words."""


# ---- sources (pure) ---------------------------------------------------------------------------------

def parse_literal(source: str) -> tuple[str, str]:
    """`--from-literal key=value` (the value may hold more `=`)."""
    key, sep, value = source.partition("=")
    if not sep or not key:
        raise CreateError(f"invalid literal source {source}, expected key=value")
    return key, value


def parse_file_source(source: str) -> tuple[str, str]:
    """`--from-file [key=]path` -> (key, path); the key defaults to the file's base name."""
    n = source.count("=")
    if n == 0:
        return os.path.basename(source.rstrip("/")) or source, source
    if n == 1 and source.startswith("="):
        raise CreateError(f"key name for file path {source[1:]} missing")
    if n == 1 and source.endswith("="):
        raise CreateError(f"file path for key name {source[:-1]} missing")
    if n > 1:
        raise CreateError("key names or file paths cannot contain '='")
    key, path = source.split("=", 1)
    return key, path


def parse_env_file(text: bytes, path: str, environ: Callable[[str], str | None] = os.environ.get
                   ) -> list[tuple[str, str]]:
    """`--from-env-file`: `KEY=VALUE` lines (leading space trimmed, blank and `#` lines skipped, a
    BOM on the first line dropped); a bare `KEY` takes the value of the environment's KEY."""
    out = []
    for i, raw in enumerate(text.splitlines()):
        if i == 0 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CreateError(f"env file {path} contains invalid utf8 bytes at line {i + 1}: {list(raw)}") from None
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not re.fullmatch(ENV_NAME_FMT, key):
            from kubelet_py.api import names  # the api package: ~45 ms of imports, not for every command
            msg = names.regex_error("a valid environment variable name must consist of alphabetic characters, "
                                    "digits, '_', '-', or '.', and must not start with a digit", ENV_NAME_FMT,
                                    "my.env-name", "MY_ENV.NAME", "MyEnvName1")
            raise CreateError(f'"{key}" is not a valid key name: {msg}')
        out.append((key, value if sep else environ(key) or ""))
    return out


# ---- builders (pure) --------------------------------------------------------------------------------

def _meta(name: str, namespace: str | None) -> dict:
    md = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return md


def _check_key(key: str, kind: str) -> None:
    from kubelet_py.api import names  # the api package: ~45 ms of imports, not for every command
    errs = names.is_config_map_key(key)
    if errs:
        if kind == "ConfigMap":
            raise CreateError(f'"{key}" is not a valid key name for a ConfigMap: {",".join(errs)}')
        raise CreateError(f'"{key}" is not valid key name for a Secret {";".join(errs)}')


def configmap(name: str, namespace: str | None = None, literals=(), files=(), env_files=()) -> dict:
    """The ConfigMap of `create configmap`: `literals` ("k=v"), `files` ((key, bytes)) and
    `env_files` ((key, value) pairs); a file that is not UTF-8 goes to binaryData."""
    data: dict[str, str] = {}
    binary: dict[str, str] = {}

    def add(key: str, value: str | None, raw: bytes | None = None) -> None:
        _check_key(key, "ConfigMap")
        if key in data:
            raise CreateError(f'cannot add key "{key}", another key by that name already exists in Data for '
                              f'ConfigMap "{name}"')
        if key in binary:
            raise CreateError(f'cannot add key "{key}", another key by that name already exists in BinaryData for '
                              f'ConfigMap "{name}"')
        if raw is not None:
            binary[key] = base64.b64encode(raw).decode()
        else:
            data[key] = value
    if env_files and (files or literals):
        raise CreateError("from-env-file cannot be combined with from-file or from-literal")
    for lit in literals:
        add(*parse_literal(lit))
    for key, content in files:
        try:
            add(key, content.decode("utf-8"))
        except UnicodeDecodeError:
            add(key, None, content)
    for key, value in env_files:
        add(key, value)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace)}
    if data:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    return obj


def secret_generic(name: str, namespace: str | None = None, literals=(), files=(), env_files=(),
                   type_: str = "") -> dict:
    """The Secret of `create secret generic` (data base64; `type` when given, else the API
    server's Opaque)."""
    data: dict[str, str] = {}

    def add(key: str, raw: bytes) -> None:
        _check_key(key, "Secret")
        if key in data:
            raise CreateError(f"cannot add key {key}, another key by that name already exists")
        data[key] = base64.b64encode(raw).decode()
    if env_files and (files or literals):
        raise CreateError("from-env-file cannot be combined with from-file or from-literal")
    for lit in literals:
        k, v = parse_literal(lit)
        add(k, v.encode())
    for key, content in files:
        add(key, content)
    for key, value in env_files:
        add(key, value.encode())
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace)}
    if type_:
        obj["type"] = type_
    if data:
        obj["data"] = data
    return obj


def secret_tls(name: str, cert: bytes, key: bytes, namespace: str | None = None) -> dict:
    """The Secret of `create secret tls` (type kubernetes.io/tls; the pair is checked by the
    command, which has the files)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace), "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}


# ---- the commands (edge: files, the daemon) -----------------------------------------------------------

def read_file_sources(sources: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(key, content) of each `--from-file`: a file, or every regular file of a directory
    (not entering subdirectories), keyed by its name."""
    out = []
    for src in sources:
        key, path = parse_file_source(src)
        if os.path.isdir(path):
            if "=" in src:
                raise CreateError("cannot give a key name for a directory path")
            for f in sorted(os.listdir(path)):
                p = os.path.join(path, f)
                if os.path.isfile(p):
                    with open(p, "rb") as fh:
                        out.append((f, fh.read()))
            continue
        try:
            with open(path, "rb") as fh:
                out.append((key, fh.read()))
        except FileNotFoundError:
            raise CreateError(f"error reading {path}: no such file or directory") from None
    return out


def read_env_files(paths: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for p in paths:
        try:
            with open(p, "rb") as fh:
                out += parse_env_file(fh.read(), p)
        except FileNotFoundError:
            raise CreateError(f"error reading {p}: no such file or directory") from None
    return out


def _post(ctx, obj: dict, plural: str, dry_run: str = "none", output: str | None = None) -> None:
    """Post the object (or with `--dry-run=client` only show it), then print it as `-o` asks."""
    from .kubectl import _client, _run
    ns = obj["metadata"].get("namespace") or "default"

    def go():
        with _client(ctx) as c:
            return c.request("POST", f"/api/v1/namespaces/{ns}/{plural}", obj)
    stored = obj if dry_run == "client" else _run(go)
    if output == "json":
        import json
        click.echo(json.dumps(stored, indent=4))
    elif output == "yaml":
        from .api.dump import to_yaml
        click.echo(to_yaml(stored), nl=False)
    else:
        click.echo(f"{obj['kind'].lower()}/{obj['metadata']['name']} created" +
                   (" (dry run)" if dry_run == "client" else ""))


def _output(f):
    f = click.option("-o", "--output", type=click.Choice(["json", "yaml"]), help="Print the object.")(f)
    return click.option("--dry-run", type=click.Choice(["none", "client"]), default="none",
                        help="client: build and print the object, send nothing.")(f)


def _sources(f):
    f = click.option("--from-env-file", "env_files", multiple=True, help="KEY=VALUE lines (repeatable).")(f)
    f = click.option("--from-file", "files", multiple=True, help="[KEY=]PATH: a file, or each file of a "
                     "directory (repeatable).")(f)
    f = click.option("--from-literal", "literals", multiple=True, help="KEY=VALUE (repeatable).")(f)
    return click.option("-n", "--namespace", default="default")(f)


def _guard(fn):
    from .cli import KpyError
    try:
        return fn()
    except CreateError as e:
        raise KpyError(str(e)) from None


# registered on kubectl's `create` group when kubelet_py.cli imports this module
from .kubectl import create as _create_group  # noqa: E402


@_create_group.command("configmap")
@click.argument("name")
@_sources
@_output
@click.pass_context
def create_configmap(ctx, name, namespace, literals, files, env_files, dry_run, output):
    """A ConfigMap from literals, files or env files, as `kubectl create configmap`."""
    obj = _guard(lambda: configmap(name, namespace, literals, read_file_sources(files), read_env_files(env_files)))
    _post(ctx, obj, "configmaps", dry_run, output)


@_create_group.group("secret")
def create_secret():
    """A Secret: `generic` (literals, files, env files) or `tls` (a certificate and its key)."""


@create_secret.command("generic")
@click.argument("name")
@_sources
@click.option("--type", "type_", default="", help="The Secret's type (default Opaque).")
@_output
@click.pass_context
def create_secret_generic(ctx, name, namespace, literals, files, env_files, type_, dry_run, output):
    obj = _guard(lambda: secret_generic(name, namespace, literals, read_file_sources(files),
                                        read_env_files(env_files), type_))
    _post(ctx, obj, "secrets", dry_run, output)


@create_secret.command("tls")
@click.argument("name")
@click.option("--cert", required=True, type=click.Path(dir_okay=False), help="PEM certificate file.")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="PEM private key file.")
@click.option("-n", "--namespace", default="default")
@_output
@click.pass_context
def create_secret_tls(ctx, name, cert, key, namespace, dry_run, output):
    def build():
        check_key_pair(cert, key)
        with open(cert, "rb") as c, open(key, "rb") as k:
            return secret_tls(name, c.read(), k.read(), namespace)
    _post(ctx, _guard(build), "secrets", dry_run, output)


def check_key_pair(cert: str, key: str) -> None:
    """kubectl's tls.X509KeyPair check: the key must be the certificate's."""
    import ssl
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise CreateError(f"failed to load key pair {e}") from None
