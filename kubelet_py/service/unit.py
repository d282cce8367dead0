"""The systemd unit of the daemon, rendered purely (install-service writes it).

Type=notify: the daemon sends READY=1 once its API socket serves (kubelet_py.service.notify).
KillMode=process: stopping or restarting the service signals the daemon alone; the pods'
supervisors (and their containers), which live in the service's cgroup, run on and are adopted
by the next start, as containerd's unit does for its shims. Delegate=yes: the cgroup subtree is
ours to manage, systemd leaves it alone. Restart=always: a crashed or killed daemon comes back.
ExecReload sends SIGHUP (the config file is re-read)."""

from __future__ import annotations

import re

UNIT_NAME = "kubelet-py.service"
UNIT_DIR = "/etc/systemd/system"


class UnitError(ValueError):
    pass


_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def quote_arg(arg: str) -> str:
    """One ExecStart word: '%' doubled (specifiers), '$' doubled (variables), double-quoted with
    backslash escapes when it holds anything but plain characters."""
    if "\n" in arg or "\0" in arg:
        raise UnitError(f"an ExecStart argument may not hold a newline or NUL: {arg!r}")
    s = arg.replace("%", "%%").replace("$", "$$")
    if s and _PLAIN.fullmatch(s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(argv: list[str], watchdog_sec: int | None = None,
                description: str = "kubelet-py: a Kubernetes node agent") -> str:
    """The unit file for the daemon started as `argv` (argv[0] an absolute path)."""
    if not argv or not argv[0].startswith("/"):
        raise UnitError(f"ExecStart needs an absolute program path, got {argv[:1]!r}")
    if watchdog_sec is not None and watchdog_sec < 1:
        raise UnitError(f"WatchdogSec: {watchdog_sec!r} must be at least 1 second")
    service = [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(quote_arg(a) for a in argv),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=always",
        "RestartSec=2",
        "KillMode=process",
        "Delegate=yes",
        "TimeoutStartSec=300",  # adoption of every running pod comes before READY=1
        "TimeoutStopSec=30",
        "TasksMax=infinity",
        "LimitNOFILE=1048576",
        "OOMScoreAdjust=-999",
    ]
    if watchdog_sec:
        service.append(f"WatchdogSec={watchdog_sec}")
    return "\n".join([
        "# written by `kubelet-py install-service`; `kubelet-py uninstall-service` removes it",
        "[Unit]",
        f"Description={description}",
        "After=network-online.target local-fs.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])
