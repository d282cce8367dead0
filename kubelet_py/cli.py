"""The `kubelet-py` command line. Global options come before any subcommand, so every command
(the daemon included) can target a private instance."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass

import click

from runtime.errors import RuntimeFailure
from runtime.image.errors import ImageError
from runtime.image.limits import UnpackLimits


@dataclass(frozen=True)
class GlobalOptions:
    """The options before the subcommand (and their env vars): where this instance keeps its
    state, and the image limits. The runtime's own `runtime.container.Paths` is made from them."""
    root: str
    run_root: str
    log_root: str
    socket: str
    registries: str
    cgroup_root: str = "kubelet-py"
    image_limits: UnpackLimits = UnpackLimits()  # --max-layer-size, --max-image-size, --max-layer-entries


class KpyError(Exception):
    """An error of the agent itself (not of a package below): one line for the user."""


def open_image_store(paths: GlobalOptions):
    """The image store under --root with the limits of the global options: every command, and the
    daemon for its pulls, opens the store here."""
    from runtime.image.store import ImageStore
    return ImageStore(paths.root, paths.image_limits)


def _store(ctx: click.Context):
    return open_image_store(ctx.obj)


def parse_count(value: str, what: str, unit: str = "bytes") -> int:
    """A whole quantity of at least 1: `1048576`, `1Gi`, `500Mi`, `1G`, `5M` (Kubernetes suffixes)."""
    from kubelet_py.quantity import QuantityError, parse_quantity
    try:
        q = parse_quantity(value, what)
    except QuantityError:
        q = None
    if q is None or q < 1 or q != q.to_integral_value():
        raise ValueError(f"{what}: {_count_why(value, unit)}")
    return int(q)


def _count_why(value: str, unit: str) -> str:
    examples = "1048576, 500Mi, 1Gi, 1G" if unit == "bytes" else "100000, 1M"
    return f"{value!r} is not a whole number of {unit} of at least 1 (e.g. {examples})"


class _Count(click.ParamType):
    """An image limit: bytes or entries, with quantity suffixes (--max-layer-size 1Gi)."""

    def __init__(self, unit: str):
        self.unit = self.name = unit

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_count(str(value), param.opts[0] if param else "limit", self.unit)
        except ValueError:
            src = ctx.get_parameter_source(param.name) if ctx and param else None
            env = f" (from ${param.envvar})" if src == click.core.ParameterSource.ENVIRONMENT else ""
            self.fail(_count_why(str(value), self.unit) + env, param, ctx)


def _iec(n: int) -> str:
    for suffix, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def _registries(ctx: click.Context):
    from runtime.image.registries import load_registries
    return load_registries(ctx.obj.registries)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="KUBELET_PY_ROOT", default="/var/lib/kubelet-py", show_default=True,
              help="Persistent state: images, pods, IPAM.")
@click.option("--run-root", envvar="KUBELET_PY_RUN_ROOT", default="/run/kubelet-py", show_default=True,
              help="Runtime state: sockets, pinned namespaces, container state.")
@click.option("--log-root", envvar="KUBELET_PY_LOG_ROOT", default="/var/log/pods", show_default=True,
              help="Container logs (CRI format).")
@click.option("--socket", envvar="KUBELET_PY_SOCKET", default="/run/kubelet-py/kubelet-py.sock",
              show_default=True, help="The daemon's API socket.")
@click.option("--registries", envvar="KUBELET_PY_REGISTRIES", default="/etc/kubelet-py/registries.yaml",
              show_default=True, help="Registry mirrors and credentials (k3s format); absent file = none.")
@click.option("--cgroup-root", envvar="KUBELET_PY_CGROUP_ROOT", default="kubelet-py", show_default=True,
              help="Parent of every cgroup the agent makes, below each hierarchy's root.")
@click.option("--max-layer-size", envvar="KUBELET_PY_MAX_LAYER_SIZE", type=_Count("bytes"),
              default=UnpackLimits.max_bytes, show_default=_iec(UnpackLimits.max_bytes),
              help="Largest layer an import or pull may store: its blob and its unpacked tar (1Gi, 500Mi, 1G).")
@click.option("--max-image-size", envvar="KUBELET_PY_MAX_IMAGE_SIZE", type=_Count("bytes"),
              default=UnpackLimits.max_image_bytes, show_default=_iec(UnpackLimits.max_image_bytes),
              help="Largest image: the sum over its layers, of blobs and of unpacked tars.")
@click.option("--max-layer-entries", envvar="KUBELET_PY_MAX_LAYER_ENTRIES", type=_Count("entries"),
              default=UnpackLimits.max_entries, show_default=True, help="Most tar entries in one layer.")
@click.pass_context
def cli(ctx, root, run_root, log_root, socket, registries, cgroup_root, max_layer_size, max_image_size,
        max_layer_entries):
    """kubelet-py: a Kubernetes node agent for one Linux host."""
    limits = UnpackLimits(max_bytes=max_layer_size, max_image_bytes=max_image_size, max_entries=max_layer_entries)
    ctx.obj = GlobalOptions(os.path.abspath(root), os.path.abspath(run_root), os.path.abspath(log_root),
                    os.path.abspath(socket), registries, cgroup_root.strip("/"), limits)


@cli.group()
def image():
    """Pull, import, list and remove images."""


@image.command("import")
@click.argument("path", type=click.Path())
@click.option("--name", help="Name the image (the archive must hold exactly one, or pick with --ref).")
@click.option("--ref", help="In an OCI layout, import only the image whose ref.name is this.")
@click.pass_context
def image_import(ctx, path, name, ref):
    """Import an OCI layout dir, an oci-archive or a docker-archive tarball."""
    from runtime.image.archive import import_path
    for rec in import_path(_store(ctx), path, name=name, ref=ref):
        click.echo(f"{rec.name} {rec.digest}")


@image.command("import-rootfs")
@click.argument("tarball", type=click.Path())
@click.option("--name", required=True, help="The image's name.")
@click.option("--entrypoint", help="Entrypoint, as a JSON list or a single word.")
@click.option("--cmd", help="Cmd, as a JSON list or a single word.")
@click.option("--env", multiple=True, help="K=V (repeatable).")
@click.option("--workdir", default="", help="WorkingDir.")
@click.option("--user", default="", help="User.")
@click.pass_context
def image_import_rootfs(ctx, tarball, name, entrypoint, cmd, env, workdir, user):
    """Make a one-layer image of a rootfs tarball, like `docker import`."""
    from runtime.image.archive import import_rootfs
    for e in env:
        if "=" not in e:
            raise click.BadParameter(f"{e!r} is not K=V", param_hint="--env")
    rec = import_rootfs(_store(ctx), tarball, name, entrypoint=_argv(entrypoint, "--entrypoint"),
                        cmd=_argv(cmd, "--cmd"), env=list(env) or None, working_dir=workdir, user=user)
    click.echo(f"{rec.name} {rec.digest}")


def _argv(value: str | None, hint: str) -> list[str] | None:
    if value is None:
        return None
    if value.startswith("["):
        try:
            v = json.loads(value)
        except ValueError:
            raise click.BadParameter("not a JSON list", param_hint=hint) from None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise click.BadParameter("must be a JSON list of strings", param_hint=hint)
        return v
    return [value]


@image.command("pull")
@click.argument("ref")
@click.option("--platform", help="os/arch[/variant] (default: this machine's).")
@click.pass_context
def image_pull(ctx, ref, platform):
    """Pull an image from a registry (OCI distribution API v2)."""
    from runtime.image.manifest import Platform
    from runtime.image.registry import pull
    plat = None
    if platform:
        parts = platform.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise click.BadParameter(f"{platform!r} is not os/arch[/variant]", param_hint="--platform")
        plat = Platform(*parts)
    from .pullprogress import pull_progress  # bars on a terminal, plain lines otherwise
    with pull_progress() as progress:
        rec = pull(_store(ctx), ref, _registries(ctx), platform=plat, progress=progress)
    click.echo(f"{rec.name} {rec.digest}")


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return str(n)


@image.command("builtin")
@click.pass_context
def image_builtin(ctx):
    """Build the built-in image (Debian's busybox-static on an empty base; `kubelet-py.local/busybox:1.35`)
    and import it: what the demo and the tests run, no registry needed."""
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.testimages import DEFAULT_IMAGE, busybox_image
    import tempfile  # ~4 ms of imports (shutil, random): not for every command
    with tempfile.TemporaryDirectory(prefix="kpy-builtin-") as d:
        write_oci_layout(d, {DEFAULT_IMAGE: busybox_image()})
        rec = import_path(_store(ctx), d)[0]
    click.echo(f"{rec.name} {rec.digest}")


@image.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def image_ls(ctx, output):
    """List stored images: name, digest, size, created."""
    rows = [{"name": im.record.name, "digest": im.record.digest, "size": im.size,
             "created": im.config.created} for im in _store(ctx).images()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<50} {'DIGEST':<19} {'SIZE':>8}  CREATED")
    for r in rows:
        click.echo(f"{r['name']:<50} {r['digest'][:19]:<19} {_human(r['size']):>8}  {r['created'] or '-'}")


@image.command("inspect")
@click.argument("ref")
@click.pass_context
def image_inspect(ctx, ref):
    """Print an image's config (and where it came from) as JSON."""
    store = _store(ctx)
    im = store.image(ref)
    cfg = json.loads(store.read_blob(im.manifest.config.digest))
    click.echo(json.dumps({"name": im.record.name, "digest": im.record.digest,
                           "index": im.record.index_digest, "size": im.size,
                           "layers": [dataclasses.asdict(d) for d in im.manifest.layers],
                           "config": cfg}, indent=2, default=str))


@image.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.pass_context
def image_rm(ctx, refs):
    """Remove image names (blobs stay until `image prune`)."""
    store = _store(ctx)
    for ref in refs:
        rec = store.remove(ref)
        click.echo(f"untagged {rec.name}")


@image.command("prune")
@click.pass_context
def image_prune(ctx):
    """Delete blobs and snapshots that no image and no container uses."""
    r = _store(ctx).prune()
    click.echo(f"removed {r['blobs']} blobs ({_human(r['bytes'])}) and {r['snapshots']} snapshots")


@cli.group()
def runtime():
    """Run OCI bundles and single containers (what runc and containerd do)."""


def _container_options(f):
    for opt in reversed([
        click.option("--image", "image_ref", help="Image to run (from the store)."),
        click.option("--memory", help="Memory limit, e.g. 64Mi."),
        click.option("--cpu", help="CPU limit, e.g. 500m (also the request)."),
        click.option("--pids", type=int, help="pids limit."),
        click.option("--user", help="name, uid, name:group or uid:gid (default: the image's User)."),
        click.option("--cap-add", multiple=True, help="Add a capability (repeatable)."),
        click.option("--cap-drop", multiple=True, help="Drop a capability, or ALL (repeatable)."),
        click.option("--privileged", is_flag=True, help="All capabilities, no masked paths."),
        click.option("--no-new-privs", is_flag=True, help="allowPrivilegeEscalation: false."),
        click.option("--read-only", is_flag=True, help="readOnlyRootFilesystem."),
        click.option("--run-as-non-root", is_flag=True, help="runAsNonRoot: refuse to start as uid 0."),
        click.option("--seccomp", default="unconfined", show_default=True, metavar="PROFILE",
                     help="seccompProfile: unconfined, runtime-default (containerd's profile) or "
                          "localhost=PATH (a profile file). Privileged containers are always unconfined."),
        click.option("--env", "-e", multiple=True, help="K=V (repeatable)."),
        click.option("--workdir", default="", help="Working directory."),
        click.option("--hostname", default="", help="Hostname (default: the container name)."),
        click.option("--name", default="runtime-run", help="Container name."),
    ]):
        f = opt(f)
    return f


def _seccomp_request(value: str) -> str:
    """--seccomp -> ContainerRequest.seccomp (Kubernetes' spelling)."""
    v = value.strip()
    if v.lower() in ("unconfined", ""):
        return "Unconfined"
    if v.lower() in ("runtime-default", "runtimedefault", "runtime/default"):
        return "RuntimeDefault"
    if v.lower().startswith("localhost="):
        path = v.split("=", 1)[1]
        if not path:
            raise click.BadParameter("localhost= needs the profile's path", param_hint="--seccomp")
        return "Localhost/" + os.path.abspath(path)
    raise click.BadParameter(f"{value!r}: unconfined, runtime-default or localhost=PATH", param_hint="--seccomp")


def _request(cmd, memory, cpu, pids, cap_add, cap_drop, privileged, no_new_privs, read_only, run_as_non_root,
             env, workdir, hostname, name, seccomp="unconfined"):
    from kubelet_py.quantity import QuantityError, to_bytes, to_milli
    from runtime.oci.generate import ContainerRequest
    envd = {}
    for e in env:
        k, sep, v = e.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{e!r} is not K=V", param_hint="--env")
        envd[k] = v
    try:
        mem = to_bytes(memory, "--memory") if memory else None
        milli = to_milli(cpu, "--cpu") if cpu else None
    except QuantityError as e:
        raise click.BadParameter(str(e)) from None
    return ContainerRequest(name=name, command=list(cmd) or None, env=envd, working_dir=workdir,
                            cap_add=list(cap_add), cap_drop=list(cap_drop), privileged=privileged,
                            allow_privilege_escalation=False if no_new_privs else None, read_only_rootfs=read_only,
                            run_as_non_root=run_as_non_root,
                            memory_limit=mem, cpu_request_milli=milli, cpu_limit_milli=milli, pids_limit=pids,
                            hostname=hostname, seccomp=_seccomp_request(seccomp))


def _runtime_paths(ctx):
    from runtime.container import Paths
    return Paths(ctx.obj.root, ctx.obj.run_root, ctx.obj.cgroup_root)


@runtime.command("spec")
@_container_options
@click.argument("cmd", nargs=-1)
@click.pass_context
def runtime_spec(ctx, image_ref, user, cmd, **kw):
    """Print the config.json that `runtime run --image` would execute."""
    from runtime.container import bundle_for, new_id, remove_bundle
    if not image_ref:
        raise click.UsageError("--image is required")
    store, paths, cid = _store(ctx), _runtime_paths(ctx), new_id()
    bundle = bundle_for(store, image_ref, _request(cmd, **kw), paths, cid, user)
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            click.echo(f.read())
    finally:
        remove_bundle(store, paths, cid)


@runtime.command("run")
@click.option("--bundle", type=click.Path(), help="Run this OCI bundle (config.json + rootfs), as `runc run`.")
@click.option("--detach", "-d", is_flag=True, help="With --image: start under a supervisor, print the id, return.")
@_container_options
@click.argument("args", nargs=-1)
@click.pass_context
def runtime_run(ctx, bundle, detach, image_ref, user, args, **kw):
    """Run a bundle (`--bundle DIR [ID]`) or one container of an image (`--image REF [-- CMD...]`)
    in the foreground; exits with the container's exit code."""
    if not detach:
        from runtime.linux.sealed import reexec_sealed
        reexec_sealed()  # this process forks the container: from a sealed interpreter (CVE-2019-5736)
    from runtime.container import new_id, run_image
    from runtime.oci.run import run_bundle
    if bool(bundle) == bool(image_ref):
        raise click.UsageError("give exactly one of --bundle DIR or --image REF")
    if detach:
        if bundle:
            raise click.UsageError("--detach works with --image")
        from runtime.pod import run_detached
        click.echo(run_detached(_store(ctx), image_ref, _request(args, **kw), _runtime_paths(ctx), ctx.obj.log_root, user))
        return
    if bundle:
        if len(args) > 1:
            raise click.UsageError("--bundle takes at most one argument: the container ID")
        status = run_bundle(os.path.abspath(bundle), args[0] if args else new_id())
    else:
        status = run_image(_store(ctx), image_ref, _request(args, **kw), _runtime_paths(ctx), user)
    if status.oom_killed:
        click.echo(f"kubelet-py: container OOMKilled (exit {status.code})", err=True)
    sys.exit(status.code)


@runtime.command("exec")
@click.option("--interactive", "-i", is_flag=True, help="Pass this terminal's stdin to CMD (else /dev/null).")
@click.option("--tty", "-t", is_flag=True, help="Run CMD on a new pty of the container, relayed here.")
@click.argument("container_id")
@click.argument("cmd", nargs=-1, required=True)
@click.pass_context
def runtime_exec(ctx, interactive, tty, container_id, cmd):
    """Run CMD in a container started with `runtime run --detach`, its output streamed here, as
    `runc exec` does: without a tty our stdio are its own; with one, a pty of the container's
    (never this terminal) relayed both ways. Exits with CMD's exit code."""
    from runtime.pod import supervisor_of
    client = supervisor_of(_runtime_paths(ctx), container_id)
    if tty:
        from kubelet_py.ttyrelay import relay
        size = os.get_terminal_size(0) if os.isatty(0) else None
        pid, master = client.exec_tty(container_id, list(cmd), size=(size.lines, size.columns) if size else None)
        relay(master, stdin=0 if interactive else None)
        sys.exit(client.exec_wait(pid))
    stdin = 0 if interactive else os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    sys.stdout.flush()
    pid, _ = client.exec_start(container_id, list(cmd), stdio=(stdin, 1, 2))
    sys.exit(client.exec_wait(pid))


@runtime.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def runtime_ls(ctx, output):
    """Every pod sandbox and container of this instance (--root/--run-root), orphans marked: what a
    SIGKILLed `runtime run` or a dead supervisor left (`runtime gc` removes them)."""
    from dataclasses import asdict
    from runtime.pod import list_objects
    objs = list_objects(_runtime_paths(ctx))
    if output == "json":
        click.echo(json.dumps([asdict(o) for o in objs], indent=2))
        return
    rows = [("KIND", "ID", "STATE", "POD", "CREATED", "DETAIL")] + [
        (o.kind, o.id, o.state, o.pod or "-", o.created_at or "-", o.detail) for o in objs]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "   " + r[5])


@runtime.command("gc")
@click.pass_context
def runtime_gc(ctx):
    """Remove every orphan: pods whose supervisor and owning `runtime run` are gone (their
    processes, mounts, namespaces, cgroups, files), containers whose pod is gone, stray pod
    cgroups. Interrupted, it can simply be run again."""
    from runtime.pod import remove_orphans
    for what in remove_orphans(_store(ctx), _runtime_paths(ctx)):
        click.echo(f"removed {what}")


@runtime.command("rm")
@click.argument("container_id")
@click.option("--time", "-t", "grace", type=float, default=10.0, show_default=True,
              help="Seconds between SIGTERM and SIGKILL (0: SIGKILL at once).")
@click.pass_context
def runtime_rm(ctx, container_id, grace):
    """Stop and remove a detached container (or what a SIGKILLed foreground run left) and its
    sandbox (idempotent)."""
    from runtime.pod import remove_detached
    final = remove_detached(_store(ctx), _runtime_paths(ctx), container_id, grace)
    if final is not None:
        click.echo(f"{container_id} exited {final.exit_code} ({final.reason})")


@cli.command()
@click.pass_context
def demo(ctx):
    """The main job (for now): build the built-in busybox image, import it, list the store, and
    run a container on it (64Mi, 500m) that says where it is."""
    from runtime.linux.sealed import reexec_sealed
    reexec_sealed()  # it forks the container itself: from a sealed interpreter (CVE-2019-5736)
    from runtime.image.archive import import_path
    from runtime.image.build import write_oci_layout
    from runtime.image.testimages import DEFAULT_IMAGE, busybox_image
    import tempfile
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kpy-demo-") as d:
        write_oci_layout(d, {DEFAULT_IMAGE: busybox_image()})
        recs = import_path(_store(ctx), d)
    click.echo(f"imported {recs[0].name} in {time.monotonic() - t0:.2f}s")
    ctx.invoke(image_ls)
    from runtime.container import run_image
    from runtime.oci.generate import ContainerRequest
    script = ('echo "hello from $(hostname): pid $$, uid $(id -u)"; echo "memory limit: '
              '$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"; '
              'grep CapEff /proc/self/status')
    req = ContainerRequest(name="demo", command=["sh", "-c", script], memory_limit=64 << 20,
                           cpu_request_milli=500, cpu_limit_milli=500)
    click.echo("$ kubelet-py runtime run --image {} --memory 64Mi --cpu 500m -- sh -c ...".format(recs[0].name))
    sys.stdout.flush()
    status = run_image(_store(ctx), recs[0].name, req, _runtime_paths(ctx))
    sys.exit(status.code)


@cli.command("oci", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                      "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def oci(args):
    """The OCI runtime with runc's command line (`kubelet-py oci --help`; also `kubelet-py-oci`)."""
    from runtime.oci.cli import main as oci_main
    sys.exit(oci_main(list(args)))


if __name__ != "__main__":  # as `python -m kubelet_py.cli`, the commands register on kubelet_py.cli (below)
    from . import kubectl as _kubectl  # noqa: E402,F401 - registers serve, apply, get, ... on `cli`
    from . import create as _create  # noqa: E402,F401 - registers create configmap|secret on kubectl's `create`
    from .service import commands as _service  # noqa: E402,F401 - install-service, uninstall-service, drain, doctor
    from .inspect import command as _inspect  # noqa: E402,F401 - inspect pod
    from . import top as _top  # noqa: E402,F401 - top pods|node


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="kubelet-py", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("kubelet-py: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (ImageError, KpyError, RuntimeFailure) as e:
        click.echo(f"kubelet-py: error: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        from .errtext import os_error_message
        click.echo(f"kubelet-py: error: {os_error_message(e)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    # this file run as a script is a second copy of the module, whose `cli` the commands (which
    # import kubelet_py.cli) never see: the module's own main runs the command line
    from kubelet_py.cli import main as _main
    _main()
