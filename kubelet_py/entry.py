"""The `kubelet-py` command (bin/kubelet-py): before the command line (click and the rest) is imported,
a command that forks containers itself re-executes from the sealed interpreter
(runtime/linux/sealed.py), so that its start-up is paid once, not twice. The plain client
commands (one request or watch, no thread, no child) end with os._exit once their output is
flushed: the interpreter's own teardown with click and the CLI loaded took 10-12 ms here, 2 ms
without (measured from the last line of main to the parent's wait)."""

from __future__ import annotations

import os
import sys

# global options of kubelet_py.cli that take a value (they come before the subcommand)
_VALUED = {"--root", "--run-root", "--log-root", "--socket", "--registries", "--cgroup-root", "--max-layer-size",
           "--max-image-size", "--max-layer-entries"}
# commands that only talk to the daemon over kubelet_py.client.SyncClient (serve, run -f, exec and
# the runtime's commands run threads or children, and end as Python ends)
PLAIN_CLIENT = {"apply", "get", "describe", "logs", "delete", "wait", "create"}


def _command(argv: list[str]) -> list[str]:
    """argv from the subcommand on (the global options skipped)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _VALUED else 1
    return argv[i:]


def forks_containers(argv: list[str]) -> bool:
    """Whether `argv` is `demo` or a foreground `runtime run`. A wrong guess costs nothing but
    time: the command itself re-executes if it still has to (a no-op once sealed)."""
    rest = _command(argv)
    if rest[:1] == ["demo"]:
        return True
    if rest[:2] != ["runtime", "run"]:
        return False
    opts = rest[2:rest.index("--")] if "--" in rest else rest[2:]
    return not any(a in ("-d", "--detach") for a in opts)


def plain_client(argv: list[str]) -> bool:
    """Whether `argv` is one of the plain client commands (a wrong guess only costs the time of
    Python's own exit)."""
    return _command(argv)[:1] in ([c] for c in PLAIN_CLIENT)


def exit_now(code) -> None:
    """Leave as sys.exit(code) would, without the interpreter's teardown: stdout and stderr flushed,
    then os._exit."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): the exit code says the rest
            code = code or 1
    os._exit(code)


def main() -> None:
    argv = sys.argv[1:]
    if forks_containers(argv):
        from runtime.linux.sealed import reexec_sealed
        reexec_sealed()
    if _command(argv)[:1] == ["apply"]:
        from kubelet_py.applycmd import quick  # the plain `apply -f` without click: ~30 ms less
        code = quick(argv)
        if code is not None:
            exit_now(code)
    from kubelet_py.cli import main as cli_main
    if not plain_client(argv):
        cli_main()
        return
    try:
        cli_main()
    except SystemExit as e:
        exit_now(e.code)
    exit_now(0)
