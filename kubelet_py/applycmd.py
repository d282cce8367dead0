"""`kubelet-py apply -f`: the manifest files read, sent to the daemon (which validates them), and
its answer printed: one implementation for the click command (kubectl.py) and for the quick path
that kubelet_py/entry.py takes for the plain form of the command line,

    kubelet-py [GLOBAL PATH OPTION]... apply (-f|--filename) PATH... [-R|--recursive] [--strict]

without importing click and the CLI (measured here: the command returned in ~55 ms, of which
~30 ms were those imports; ~25 ms without). The global options that are plain strings (--socket,
which it uses, and --root, --run-root, --log-root, --registries, --cgroup-root, which apply does
not) may come first. Anything else on the line (--help, another global option, an unknown flag,
no -f) goes to click, which parses, helps and reports as always."""

from __future__ import annotations

import os
import sys

from .entry import _VALUED

DEFAULT_SOCKET = "/run/kubelet-py/kubelet-py.sock"  # kubelet_py/cli.py's --socket default
SOCKET_ENV = "KUBELET_PY_SOCKET"
APPLY_PATH = "/apis/kubelet-py/v1/apply"
# entry.py's valued global options less the typed ones (click checks those: a count with a unit)
_STRING_GLOBALS = _VALUED - {"--max-layer-size", "--max-image-size", "--max-layer-entries"}


class MissingPath(Exception):
    """A -f path that does not exist."""

    def __init__(self, path: str):
        super().__init__(f'error: the path "{path}" does not exist')
        self.path = path


def read_files(paths, recursive: bool) -> list[tuple[str, str]]:
    """(name, text) of every manifest named: files, directories (.yaml, .yml, .json; -R enters
    subdirectories), `-` for standard input."""
    out = []
    for p in paths:
        if p == "-":
            out.append(("<stdin>", sys.stdin.read()))
        elif os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(dirs) if recursive else []
                for f in sorted(files):
                    if f.endswith((".yaml", ".yml", ".json")):
                        with open(os.path.join(root, f)) as fh:
                            out.append((os.path.join(root, f), fh.read()))
        elif os.path.exists(p):
            with open(p) as fh:
                out.append((p, fh.read()))
        else:
            raise MissingPath(p)
    return out


def apply_files(socket_path: str, files: list[tuple[str, str]], strict: bool, echo) -> None:
    """Send the files to the daemon (its apply API, `{"files": [{"name", "text"}], "strict"}`)
    and print its answer: `echo(text, err)` per line, warnings to stderr. Raises
    kubelet_py.client.ClientError. Through lightclient: no `json` or `socket` import."""
    from .lightclient import encode_str, post_json
    docs = ", ".join('{"name": %s, "text": %s}' % (encode_str(n), encode_str(t)) for n, t in files)
    body = '{"files": [%s], "strict": %s}' % (docs, "true" if strict else "false")
    for r in post_json(socket_path, APPLY_PATH, body)["items"]:
        o = r["object"]
        for w in r.get("warnings", []):
            echo(f"Warning: {w}", True)
        echo(f"{o['kind'].lower()}/{o['metadata']['name']} {r['action']}", False)


def parse_plain(argv: list[str]) -> tuple[str, list[str], bool, bool] | None:
    """(socket, paths, recursive, strict) of the plain form above, None for any other line."""
    socket_path = os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    i = 0
    while i < len(argv) and argv[i] != "apply":
        name, eq, value = argv[i].partition("=")
        if name not in _STRING_GLOBALS or (not eq and i + 1 == len(argv)):
            return None
        if not eq:
            value, i = argv[i + 1], i + 1
        i += 1
        if name == "--socket":
            socket_path = value
    if i == len(argv) or not socket_path:
        return None
    paths, recursive, strict = [], False, False
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        a = rest[j]
        if a in ("-f", "--filename") and j + 1 < len(rest):
            paths.append(rest[j + 1])
            j += 2
            continue
        if a.startswith("--filename=") and len(a) > len("--filename="):
            paths.append(a.split("=", 1)[1])
        elif a in ("-R", "--recursive"):
            recursive = True
        elif a == "--strict":
            strict = True
        else:
            return None
        j += 1
    return (os.path.abspath(socket_path), paths, recursive, strict) if paths else None


def quick(argv: list[str]) -> int | None:
    """Run the plain form of `apply` without click: its exit code, or None (nothing done, not
    even stdin read) when `argv` is not that form. Messages as kubelet_py.cli.main prints them."""
    parsed = parse_plain(argv)
    if parsed is None:
        return None
    socket_path, paths, recursive, strict = parsed
    from .errtext import os_error_message, server_message

    def echo(text: str, err: bool) -> None:
        print(text, file=sys.stderr if err else sys.stdout)
    try:
        apply_files(socket_path, read_files(paths, recursive), strict, echo)
    except OSError as e:
        echo(f"kubelet-py: error: {os_error_message(e)}", True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from .client import ClientError  # imported on this path only (see lightclient)
        if not isinstance(e, (MissingPath, ClientError)):
            raise
        echo(f"kubelet-py: error: {server_message(e)}", True)
        return 1
    return 0
