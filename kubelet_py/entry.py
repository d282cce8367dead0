"""The `kubelet-py` console script: before the command line (click and the rest) is imported,
a command that forks containers itself re-executes from the sealed interpreter
(runtime/linux/sealed.py), so that its start-up is paid once, not twice."""

from __future__ import annotations

import sys

# global options of kubelet_py.cli that take a value (they come before the subcommand)
_VALUED = {"--root", "--run-root", "--log-root", "--socket", "--registries", "--cgroup-root"}


def forks_containers(argv: list[str]) -> bool:
    """Whether `argv` is `demo` or a foreground `runtime run`. A wrong guess costs nothing but
    time: the command itself re-executes if it still has to (a no-op once sealed)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _VALUED else 1
    rest = argv[i:]
    if rest[:1] == ["demo"]:
        return True
    if rest[:2] != ["runtime", "run"]:
        return False
    opts = rest[2:rest.index("--")] if "--" in rest else rest[2:]
    return not any(a in ("-d", "--detach") for a in opts)


def main() -> None:
    if forks_containers(sys.argv[1:]):
        from runtime.linux.sealed import reexec_sealed
        reexec_sealed()
    from kubelet_py.cli import main as cli_main
    cli_main()
