"""`kubelet-py install-service | uninstall-service | drain | doctor`, registered on the CLI when
kubelet_py.cli imports this module (as kubelet_py.create registers its commands).

install-service writes the unit (kubelet_py.service.unit) and, when systemd runs here
(/run/systemd/system exists, sd_booted's test) and the unit goes to the real unit directory,
runs `systemctl daemon-reload` and `systemctl enable --now`; otherwise it says what to run.
These commands run systemctl themselves: the daemon never does."""

from __future__ import annotations

import os
import sys

import click

from kubelet_py.cli import KpyError, cli

from . import unit as unitfile

SYSTEMD_RUNNING = "/run/systemd/system"
# global options of kubelet_py.cli carried into ExecStart when given (flag or environment)
GLOBAL_FLAGS = {"root": "--root", "run_root": "--run-root", "log_root": "--log-root", "socket": "--socket",
                "registries": "--registries", "cgroup_root": "--cgroup-root", "max_layer_size": "--max-layer-size",
                "max_image_size": "--max-image-size", "max_layer_entries": "--max-layer-entries"}


def systemd_running() -> bool:
    return os.path.isdir(SYSTEMD_RUNNING)


def console_script() -> str:
    """The absolute path of the installed `kubelet-py` script: the one running, else the one
    beside this interpreter (a venv's bin/), else the one on PATH."""
    me = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(me) == "kubelet-py" and os.access(me, os.X_OK):
        return me
    beside = os.path.join(os.path.dirname(sys.executable), "kubelet-py")
    if os.access(beside, os.X_OK):
        return beside
    import shutil
    found = shutil.which("kubelet-py")
    if found:
        return os.path.abspath(found)
    raise KpyError("no installed kubelet-py script found (beside the interpreter or on PATH): "
                   "pip install . from the checkout first")


def exec_start(ctx: click.Context, config: str | None) -> list[str]:
    """The daemon's command line: the script, the global options given to this command, serve,
    and --config when one was named."""
    argv = [console_script()]
    parent = ctx.find_root()
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    for name, flag in GLOBAL_FLAGS.items():
        if parent.get_parameter_source(name) in given:
            argv += [flag, str(parent.params[name])]
    argv.append("serve")
    if config:
        argv += ["--config", os.path.abspath(config)]
    return argv


def _systemctl(*args: str) -> None:
    import subprocess
    p = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise KpyError(f"systemctl {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


@cli.command("install-service")
@click.option("--config", type=click.Path(dir_okay=False),
              help="Config file the service's serve reads (default: /etc/kubelet-py/config.yaml when it exists).")
@click.option("--watchdog-sec", type=click.IntRange(1, 3600), help="WatchdogSec=: systemd restarts a daemon whose "
              "sync loop stops for this long.")
@click.option("--unit-dir", envvar="KUBELET_PY_UNIT_DIR", default=unitfile.UNIT_DIR, show_default=True,
              type=click.Path(file_okay=False), help="Where the unit goes (another directory: written only).")
@click.option("--no-start", is_flag=True, help="Write and enable, do not start it now.")
@click.pass_context
def install_service(ctx, config, watchdog_sec, unit_dir, no_start):
    """Install kubelet-py.service (systemd) and start it."""
    if config and not os.path.isfile(config):
        raise KpyError(f"--config {config}: no such file")
    text = unitfile.render_unit(exec_start(ctx, config), watchdog_sec)
    os.makedirs(unit_dir, exist_ok=True)
    path = os.path.join(unit_dir, unitfile.UNIT_NAME)
    _write_atomic(path, text)
    click.echo(f"wrote {path}")
    if os.path.abspath(unit_dir) != unitfile.UNIT_DIR:
        click.echo(f"{unit_dir} is not {unitfile.UNIT_DIR}: systemctl not run")
        return
    if not systemd_running():
        click.echo(f"systemd is not running here (no {SYSTEMD_RUNNING}): start the daemon by hand "
                   f"({' '.join(exec_start(ctx, config))}), or boot with systemd and run "
                   "systemctl daemon-reload && systemctl enable --now kubelet-py")
        return
    _systemctl("daemon-reload")
    _systemctl("enable", *(() if no_start else ("--now",)), unitfile.UNIT_NAME)
    click.echo("enabled" + ("" if no_start else " and started") + f" {unitfile.UNIT_NAME} "
               "(systemctl status kubelet-py; journalctl -u kubelet-py)")


@cli.command("uninstall-service")
@click.option("--unit-dir", envvar="KUBELET_PY_UNIT_DIR", default=unitfile.UNIT_DIR, show_default=True,
              type=click.Path(file_okay=False))
def uninstall_service(unit_dir):
    """Stop and disable kubelet-py.service and remove its unit. Pods keep running: drain first
    to stop them."""
    path = os.path.join(unit_dir, unitfile.UNIT_NAME)
    real = os.path.abspath(unit_dir) == unitfile.UNIT_DIR and systemd_running()
    if real:
        _systemctl("disable", "--now", unitfile.UNIT_NAME)
        click.echo(f"stopped and disabled {unitfile.UNIT_NAME} (pods keep running: `kubelet-py drain` stops them)")
    try:
        os.unlink(path)
        click.echo(f"removed {path}")
    except FileNotFoundError:
        click.echo(f"{path} was not there")
    if real:
        _systemctl("daemon-reload")


# ---- drain ------------------------------------------------------------------------------------------

def _is_static(pod: dict) -> bool:
    from kubelet_py.status.podspec import CONFIG_SOURCE_ANNOTATION
    src = (pod["metadata"].get("annotations") or {}).get(CONFIG_SOURCE_ANNOTATION)
    return bool(src) and src != "api"


@cli.command()
@click.option("--grace-period", type=int, default=None,
              help="Seconds each pod gets to stop (default: each pod's terminationGracePeriodSeconds).")
@click.option("--timeout", default="5m", show_default=True, help="How long to wait for the pods to be gone.")
@click.pass_context
def drain(ctx, grace_period, timeout):
    """Stop every pod of the node through the daemon (as `delete pods --all -A`), and wait until
    they are gone. Static pods are left: their manifest files would bring them back."""
    import time
    from kubelet_py.kubectl import _client, _duration, _obj_path, _run, wait_gone
    limit = _duration(timeout, "--timeout")

    def go():
        with _client(ctx) as c:
            pods = c.get("/api/v1/pods")["items"]
            static = [p for p in pods if _is_static(p)]
            todo = [p for p in pods if not _is_static(p)]
            for p in static:
                click.echo(f"skipped static pod {p['metadata']['namespace']}/{p['metadata']['name']}: remove its "
                           "file from the manifest directory to stop it")
            if not todo:
                click.echo("no pods to drain")
                return
            click.echo(f"draining {len(todo)} pods")
            params = {"gracePeriodSeconds": str(grace_period)} if grace_period is not None else None
            t0 = time.monotonic()
            for p in todo:
                md = p["metadata"]
                c.delete(_obj_path("Pod", md["namespace"], md["name"]), params)
                click.echo(f"pod {md['namespace']}/{md['name']} stopping")
            deadline = t0 + limit
            left = []
            for p in todo:
                md = p["metadata"]
                if wait_gone(c, "Pod", md["namespace"], md["name"], deadline):
                    click.echo(f"pod {md['namespace']}/{md['name']} gone")
                else:
                    left.append(f"{md['namespace']}/{md['name']}")
            if left:
                raise KpyError(f"still there after {timeout}: {', '.join(left)}")
            click.echo(f"drained: {len(todo)} pods stopped in {time.monotonic() - t0:.1f}s")
    _run(go)


# ---- doctor -----------------------------------------------------------------------------------------

def _serve_values(config: str | None) -> dict:
    """serve's flag values as the daemon would take them from the config file and defaults."""
    from kubelet_py.config.file import ConfigFileError, DEFAULT_PATH
    from kubelet_py.kubectl import serve
    from .daemon import flag_defaults, read_config, schema_of
    values = flag_defaults(serve)
    try:
        values.update(read_config(config or DEFAULT_PATH, bool(config), schema_of(serve)))
    except ConfigFileError as e:
        raise KpyError(str(e)) from None
    return values


@cli.command()
@click.option("-o", "--output", type=click.Choice(["json"]), help="The checks (and the facts) as JSON.")
@click.option("--config", envvar="KUBELET_PY_CONFIG", type=click.Path(dir_okay=False),
              help="The daemon's config file, for its pod CIDR, bridge and chain prefix.")
@click.option("--pod-cidr", help="Instead of the config file's (default serve's).")
@click.option("--service-cidr", help="Default: the Service allocator's (10.96.0.0/12).")
@click.option("--bridge", help="Instead of the config file's.")
@click.option("--chain-prefix", help="Instead of the config file's.")
@click.pass_context
def doctor(ctx, output, config, pod_cidr, service_cidr, bridge, chain_prefix):
    """Check this host for what the daemon needs: one line per check with its fix; exit status 1
    when something required is missing."""
    import json
    from kubelet_py.doctor import checks, facts
    from kubelet_py.services.alloc import AllocConfig
    sv = _serve_values(config)
    o = ctx.obj
    cfg = {"pod_cidr": pod_cidr or sv.get("pod_cidr") or "10.244.0.0/16",
           "service_cidr": service_cidr or sv.get("service_cidr") or str(AllocConfig().cidr),
           "bridge": bridge or sv.get("bridge") or "kpy0",
           "chain_prefix": chain_prefix or sv.get("chain_prefix") or "KPY",
           "root": o.root, "run_root": o.run_root, "log_root": o.log_root, "socket": o.socket}
    root = ctx.find_root().command
    cfg["defaults"] = {"root": _default(root, "root"), "run_root": _default(root, "run_root"),
                       "socket": _default(root, "socket"), "bridge": "kpy0"}
    for k in ("root", "run_root", "socket"):
        cfg["defaults"][k] = os.path.abspath(cfg["defaults"][k])
    try:
        f = facts.gather(cfg)
        results = checks.run_all(f, cfg)
    except ValueError as e:  # a CIDR that does not parse
        raise KpyError(f"doctor: {e}") from None
    bad = checks.failed(results)
    if output == "json":
        click.echo(json.dumps({"ok": not bad, "config": {k: v for k, v in cfg.items() if k != "defaults"},
                               "checks": [c.to_dict() for c in results], "facts": f}, indent=2))
    else:
        click.echo(checks.render(results), nl=False)
        warns = sum(c.status == checks.WARN for c in results)
        click.echo(f"{len(results)} checks: {len(bad)} required missing, {warns} warnings" +
                   ("" if not bad else " -- the daemon cannot run pods here until the FAIL lines are fixed"))
    if bad:
        sys.exit(1)


def _default(command: click.Command, name: str) -> str:
    for p in command.params:
        if p.name == name:
            return p.default
    raise KeyError(name)
