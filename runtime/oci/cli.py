"""kubelet-py-oci: kubelet-py's runtime behind runc's command line (kernel edge of the OCI CLI).

    kubelet-py-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB ...

Verbs as the runtime spec's operations (runtime.md) and runc's CLI spell them: create, start,
state, kill, delete, run, exec, ps, list, features. podman (through conmon) and the containerd
runc shim drive it exactly as they drive runc.

create forks the container with the same executor as `kubelet-py runtime run`
(`runtime.oci.run.start` with `CreateOptions`): the init is left blocked on the exec fifo as its
last step before execve, and this process exits, so the init is reparented to the caller's
subreaper (conmon, containerd-shim). State lives in --root/<id>/ (state.json, exec.fifo).

Start-up matters (every call is a fresh process, several per `podman run`): only os and sys are
imported at first; each verb imports what it needs. The verbs that fork into containers
(create, run, exec) first re-execute from a sealed memfd copy of the interpreter
(CVE-2019-5736), as runc re-execs itself from a memfd."""

from __future__ import annotations

import os
import sys

DEFAULT_ROOT = "/run/kubelet-py-oci"
PROG = "kubelet-py-oci"
CGROUP_PARENT = "kubelet-py-oci"  # when config.json has no linux.cgroupsPath
CACHE = "@cache"  # compiled seccomp programs, under --root ('@' is in no container id)


class Ctx:
    def __init__(self, root: str, log: str | None, log_format: str, debug: bool):
        self.root, self.log, self.log_format, self.debug = root, log, log_format, debug

    def emit(self, level: str, msg: str) -> None:
        if not self.log:
            return
        import time
        from .state import log_line
        t = time.time()
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
        try:
            with open(self.log, "a") as f:
                f.write(log_line(self.log_format, level, msg, when))
        except OSError as e:  # the caller's log is unwritable: say so where it still can be read
            sys.stderr.write(f"kubelet-py-oci: --log {self.log}: {e.strerror or e}\n")


def _err(msg: str, obj: str | None = None, field: str | None = None):
    from .state import OciError
    return OciError(msg, obj, field)


# ---- the argument parser (runc's spelling) ------------------------------------------------

# Each option: (names, attribute, kind) with kind "flag", "value", "int" or "append". Long
# options take one or two dashes (runc's Go flag parsing takes both) and `--opt=value`.
_GLOBAL = [(("--root",), "root", "value"), (("--log",), "log", "value"), (("--log-format",), "log_format", "value"),
           (("--debug",), "debug", "flag"), (("--systemd-cgroup",), "systemd_cgroup", "flag"),
           (("--rootless",), "rootless", "value"), (("--criu",), "criu", "value"),
           (("-v", "--version"), "version", "flag"), (("-h", "--help"), "help", "flag")]
_CREATING = [(("-b", "--bundle"), "bundle", "value"), (("--pid-file",), "pid_file", "value"),
             (("--console-socket",), "console_socket", "value"), (("--no-pivot",), "no_pivot", "flag"),
             (("--no-new-keyring",), "no_new_keyring", "flag"), (("--preserve-fds",), "preserve_fds", "int"),
             (("--notify-socket",), "notify_socket", "value"), (("-d", "--detach"), "detach", "flag")]
# verb: (options, positional names (a trailing * takes the rest, unparsed), help)
_VERBS = {
    "create": (_CREATING, ["id"], "create a container; its process waits for `start`"),
    "run": (_CREATING + [(("--keep",), "keep", "flag")], ["id"],
            "create and start a container in the foreground (exit code: the container's)"),
    "start": ([], ["id"], "let a created container run its process"),
    "state": ([], ["id"], "print the container's state (runtime spec JSON)"),
    "kill": ([(("-a", "--all"), "all", "flag")], ["id", "signal?"], "send a signal (default SIGTERM)"),
    "delete": ([(("-f", "--force"), "force", "flag")], ["id"], "remove a stopped (with --force: any) container"),
    "exec": ([(("-p", "--process"), "process", "value"), (("-t", "--tty"), "tty", "flag"),
              (("-d", "--detach"), "detach", "flag"), (("--pid-file",), "pid_file", "value"),
              (("--console-socket",), "console_socket", "value"), (("--cwd",), "cwd", "value"),
              (("-e", "--env"), "env", "append"), (("-u", "--user"), "user", "value"),
              (("--preserve-fds",), "preserve_fds", "int")], ["id", "args*"], "run a process in a running container"),
    "ps": ([(("-f", "--format"), "format", "value")], ["id", "ps_args*"], "the container's processes"),
    "list": ([(("-f", "--format"), "format", "value"), (("-q", "--quiet"), "quiet", "flag")], [],
             "the containers under --root"),
    "features": ([], [], "what this runtime supports (runtime spec features.md)"),
}
_DEFAULTS = {"root": DEFAULT_ROOT, "log": None, "log_format": "text", "debug": False, "systemd_cgroup": False,
             "rootless": "false", "criu": None, "version": False, "help": False, "verb": None, "bundle": ".",
             "pid_file": None, "console_socket": None, "no_pivot": False, "no_new_keyring": False,
             "preserve_fds": 0, "notify_socket": None, "detach": False, "keep": False, "signal": "TERM",
             "all": False, "force": False, "process": None, "tty": False, "cwd": None, "env": None, "user": None,
             "args": None, "ps_args": None, "format": "table", "quiet": False, "id": None}
_CHOICES = {"log_format": ("text", "json"), "format": ("table", "json")}


class UsageError(Exception):
    pass


class Opts:
    def __init__(self):
        self.__dict__.update(_DEFAULTS)
        self.env, self.args, self.ps_args = [], [], []


def usage() -> str:
    lines = [f"usage: {PROG} [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB [OPTIONS] ...", "",
             "kubelet-py's OCI runtime, with runc's command line. Verbs:"]
    for v, (opts, pos, hlp) in _VERBS.items():
        names = " ".join(f"[{'|'.join(n)}{'' if k == 'flag' else ' X'}]" for n, _a, k in opts)
        args = " ".join(p.rstrip("?*").upper() + ("..." if p.endswith("*") else "") for p in pos)
        lines.append(f"  {v:<9} {names} {args}".rstrip())
        lines.append(f"            {hlp}")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> Opts:
    """runc's command line, parsed by hand: argparse costs this short-lived process ~10 ms."""
    o = Opts()
    table = {n.lstrip("-"): (a, k) for names, a, k in _GLOBAL for n in names}
    positional: list[str] = []
    pos_names: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if o.verb and pos_names and pos_names[min(len(positional), len(pos_names) - 1)].endswith("*") \
                and len(positional) >= len(pos_names) - 1:
            positional.append(tok)  # the command of exec (and ps's args): taken as they are
            continue
        if tok == "--":
            positional.extend(argv[i:])
            break
        if tok.startswith("-") and tok != "-":
            name, eq, val = tok.lstrip("-").partition("=")
            if name not in table:
                raise UsageError(f"unknown option {tok}" + (f" for {o.verb}" if o.verb else ""))
            attr, kind = table[name]
            if kind == "flag":
                if eq:
                    raise UsageError(f"{tok}: takes no value")
                setattr(o, attr, True)
                continue
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"{tok}: needs a value")
                val = argv[i]
                i += 1
            if attr in _CHOICES and val not in _CHOICES[attr]:
                raise UsageError(f"{tok}: {val!r} is not one of {', '.join(_CHOICES[attr])}")
            if kind == "int":
                try:
                    val = int(val)
                except ValueError:
                    raise UsageError(f"{tok}: {val!r} is not a number") from None
            if kind == "append":
                getattr(o, attr).append(val)
            else:
                setattr(o, attr, val)
            continue
        if o.verb is None:
            if tok not in _VERBS:
                raise UsageError(f"unknown verb {tok!r} (verbs: {', '.join(_VERBS)})")
            o.verb = tok
            opts, pos_names, _h = _VERBS[tok]
            table = {n.lstrip("-"): (a, k) for names, a, k in opts for n in names}
            continue
        positional.append(tok)
    if o.verb is None:
        return o
    for n, name in enumerate(pos_names):
        attr = name.rstrip("?*")
        if name.endswith("*"):
            setattr(o, attr, positional[n:])
            positional = positional[:n]
            break
        if n < len(positional):
            setattr(o, attr, positional[n])
        elif not name.endswith("?"):
            raise UsageError(f"{o.verb}: missing {attr.upper()}")
    if len(positional) > len([p for p in pos_names if not p.endswith("*")]):
        raise UsageError(f"{o.verb}: unexpected argument {positional[len(pos_names)]!r}")
    return o


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        o = parse_args(argv)
    except UsageError as e:
        print(f"{PROG}: {e}\n{usage()}", file=sys.stderr)
        return 2
    if o.help:
        print(usage())
        return 0
    if o.version:
        from .state import OCI_VERSION, VERSION
        print(f"{PROG} version {VERSION}\nspec: {OCI_VERSION}")
        return 0
    if not o.verb:
        print(usage(), file=sys.stderr)
        return 2
    if o.verb in ("create", "run", "exec"):
        # these fork into the container: first re-execute from a sealed copy of the interpreter
        # (CVE-2019-5736), before anything else is imported (the copy imports it once)
        from ..linux.sealed import reexec_sealed
        reexec_sealed()
    ctx = Ctx(os.path.abspath(o.root), o.log, o.log_format, o.debug)
    from ..errors import RuntimeFailure
    from .state import OciError
    try:
        if o.systemd_cgroup:
            raise _err("--systemd-cgroup: the systemd cgroup driver is not supported (use cgroupfs)")
        if ctx.debug:
            ctx.emit("debug", f"{o.verb} {' '.join(argv)}")
        return VERBS[o.verb](ctx, o) or 0
    except OciError as e:
        line = e.line()
    except RuntimeFailure as e:  # SpecError, RunError, CgroupError: their text names field and step
        line = f"{o.id}: {e}" if getattr(o, "id", None) else str(e)
    except OSError as e:
        line = f"{getattr(o, 'id', '') or o.verb}: {e}"
    ctx.emit("error", line)
    print(f"{PROG}: {o.verb}: {line}", file=sys.stderr)
    return 1


# ---- state on disk ------------------------------------------------------------------------

def _dir(ctx: Ctx, cid: str) -> str:
    from .state import validate_id
    return os.path.join(ctx.root, validate_id(cid))


def _write_atomic(path: str, data: str, mode: int = 0o644) -> None:
    from ..atomicfile import write_atomic  # the runtime's one atomic write
    write_atomic(path, data.encode(), mode)


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def _load(ctx: Ctx, cid: str):
    """(Recorded, status) of an existing container."""
    import json
    from .state import Recorded, status_of
    d = _dir(ctx, cid)
    try:
        with open(os.path.join(d, "state.json")) as f:
            rec = Recorded.from_json(json.load(f))
    except FileNotFoundError:
        raise _err("container does not exist", cid) from None
    except ValueError:
        raise _err("corrupt state file", cid) from None
    alive = _proc_start_time(rec.pid) == rec.start_time
    from .execfifo import EXEC_FIFO
    return rec, status_of(alive, os.path.exists(os.path.join(d, EXEC_FIFO)))


# ---- hooks --------------------------------------------------------------------------------

def _run_hooks(ctx: Ctx, hooks: dict, name: str, state: dict, ns_pid: int | None = None,
               fatal: bool = True) -> None:
    """Run the hooks of one point with the state on stdin; in the container's namespaces when
    `ns_pid` is given (createContainer, startContainer). A failing hook is an error (fatal) or a
    logged warning (poststart, poststop), as the runtime spec says."""
    if not hooks.get(name):
        return
    import json
    import subprocess
    for h in hooks[name]:
        fds = []
        preexec = None
        if ns_pid is not None:
            from ..linux import sys as ksys
            for ns, flag in (("ipc", ksys.CLONE_NEWIPC), ("uts", ksys.CLONE_NEWUTS), ("net", ksys.CLONE_NEWNET),
                             ("cgroup", ksys.CLONE_NEWCGROUP), ("mnt", ksys.CLONE_NEWNS)):
                try:
                    fds.append((os.open(f"/proc/{ns_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC), flag))
                except FileNotFoundError:
                    pass

            def preexec(fds=fds, ksys=ksys):
                for fd, flag in fds:
                    ksys.setns(fd, flag)
        try:
            p = subprocess.run(h["args"], executable=h["path"], env=dict(e.split("=", 1) for e in h["env"]),
                               input=json.dumps(state).encode(), capture_output=True, timeout=h["timeout"],
                               preexec_fn=preexec, close_fds=True)
            why = None if p.returncode == 0 else \
                f"exit status {p.returncode}: {p.stderr.decode(errors='replace').strip().splitlines()[-1:] or ''}"
        except subprocess.TimeoutExpired:
            why = f"timed out after {h['timeout']}s"
        except OSError as e:
            why = e.strerror or str(e)
        finally:
            for fd, _ in fds:
                os.close(fd)
        if why:
            msg = f"{name} hook {h['path']}: {why}"
            if fatal:
                raise _err(msg, state["id"], f"hooks.{name}")
            ctx.emit("warning", f"{state['id']}: {msg}")
            print(f"{PROG}: warning: {state['id']}: {msg}", file=sys.stderr)


# ---- the verbs ----------------------------------------------------------------------------

def _config(bundle: str, process: dict | None = None):
    """config.json of `bundle` through the executor's own parser. What the executor does not
    take (hooks, the terminal) is the command line's and is taken out first.
    Returns (spec, rootfs, hooks, terminal, console_size)."""
    from . import run as R
    from .spec import SpecError
    from .state import parse_hooks
    doc = R.read_config(bundle)
    if not isinstance(doc, dict):
        raise SpecError("(document)", "must be an object")
    hooks = parse_hooks(doc.pop("hooks", None))
    if process is not None:
        doc["process"] = process
    proc = doc.get("process")
    terminal, size = False, None
    if isinstance(proc, dict):
        proc = doc["process"] = dict(proc)
        terminal = bool(proc.pop("terminal", False))
        cs = proc.pop("consoleSize", None)
        if isinstance(cs, dict) and cs.get("height") and cs.get("width"):
            size = (int(cs["height"]), int(cs["width"]))
    spec, rootfs = R.spec_from(doc, bundle, host_mounts=True)  # as runc: no mount namespace is the config's choice
    return spec, rootfs, hooks, terminal, size


def _warn_ignored(ctx: Ctx, cid: str, spec) -> None:
    """What config.json asks for that is ignored (unknown properties, kernel memory): a warning
    in the log, or on stderr without --log (as runc's)."""
    for w in spec.warnings:
        ctx.emit("warning", f"{cid}: config.json: {w}")
        if not ctx.log:
            print(f"{PROG}: warning: {cid}: config.json: {w}", file=sys.stderr)


def _connect_console(path: str | None, terminal: bool, cid: str) -> int | None:
    if terminal and not path:
        raise _err("needs --console-socket", cid, "process.terminal")
    if not terminal:
        return None  # runc ignores a console socket without a terminal
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise _err(f"console socket {path}: {e.strerror}", cid, "--console-socket") from None
    return s.detach()


def _created_time() -> str:
    import time
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def cmd_create(ctx: Ctx, o) -> int:
    _create(ctx, o)  # main() has re-executed from a sealed interpreter first
    return 0


def _create(ctx: Ctx, o) -> int:
    import json
    d = _dir(ctx, o.id)
    if o.preserve_fds:
        raise _err("--preserve-fds is not supported", o.id, "--preserve-fds")
    bundle = os.path.abspath(o.bundle)
    spec, rootfs, hooks, terminal, size = _config(bundle)
    _warn_ignored(ctx, o.id, spec)
    from . import run as R
    from .state import Recorded, hook_state
    os.makedirs(ctx.root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(d, 0o711)  # the lock: a second container with this id fails here
    except FileExistsError:
        raise _err("container with this id exists", o.id) from None
    started = None
    console = None
    try:
        from .execfifo import EXEC_FIFO
        fifo = os.path.join(d, EXEC_FIFO)
        os.mkfifo(fifo, 0o600)
        console = _connect_console(o.console_socket, terminal, o.id)

        def before_pivot(pid: int) -> None:
            st = hook_state(o.id, pid, bundle, "creating", spec.annotations)
            _run_hooks(ctx, hooks, "prestart", st)
            _run_hooks(ctx, hooks, "createRuntime", st)
            _run_hooks(ctx, hooks, "createContainer", st, ns_pid=pid)

        want_hooks = any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer"))
        started = R.start(spec, rootfs, o.id, CGROUP_PARENT, None, R.CreateOptions(
            exec_fifo=fifo, console=console, console_size=size, before_pivot=before_pivot if want_hooks else None,
            seccomp_cache=os.path.join(ctx.root, CACHE)))
        st_time = _proc_start_time(started.pid)
        if st_time is None:
            raise _err("the container's process exited during create", o.id)
        keep = {k: v for k, v in hooks.items() if k in ("startContainer", "poststart", "poststop")}
        rec = Recorded(o.id, started.pid, bundle, started.cgroup.path, st_time, _created_time(),
                       spec.annotations, keep, "root" if os.geteuid() == 0 else str(os.geteuid()),
                       started.rootfs if started.host_mounts else "", list(started.host_mounts))
        _write_atomic(os.path.join(d, "state.json"), json.dumps(rec.to_json()))
        if o.pid_file:
            _write_atomic(os.path.abspath(o.pid_file), str(started.pid))
        return started.pid
    except BaseException:
        # a failed create leaves nothing behind: no process, cgroup, state dir (start() itself
        # already cleans up after its own failures)
        if started is not None:
            started.cleanup()
        import shutil
        shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        if console is not None:
            os.close(console)


def cmd_start(ctx: Ctx, o) -> int:
    rec, status = _load(ctx, o.id)
    _start(ctx, rec, status)
    return 0


def _start(ctx: Ctx, rec, status: str) -> None:
    if status == "running":
        raise _err("cannot start an already running container", rec.id)
    if status != "created":
        raise _err(f"cannot start a container in the {status} state", rec.id)
    from .state import hook_state
    from .execfifo import EXEC_FIFO, release_exec_fifo
    fifo = os.path.join(_dir(ctx, rec.id), EXEC_FIFO)
    try:
        _run_hooks(ctx, rec.hooks, "startContainer", hook_state(rec.id, rec.pid, rec.bundle, "created",
                                                                 rec.annotations), ns_pid=rec.pid)
    except BaseException:
        _kill_all(rec)  # as runc: a failed startContainer hook stops the container
        raise
    try:
        fd = release_exec_fifo(fifo)  # unlinked: from here on the status is running
    except OSError:  # ENXIO: no reader, the init is gone
        raise _err("cannot start a container that has stopped", rec.id) from None
    try:
        # wait until the init has consumed the byte and exec'd: its fifo fd (close-on-exec) is
        # then gone, the fifo has no reader and poll reports POLLERR on our end
        import select
        poller = select.poll()
        poller.register(fd, select.POLLERR)
        for _ in range(1000):
            if poller.poll(10):
                break
            if _proc_start_time(rec.pid) != rec.start_time:
                break
    finally:
        os.close(fd)
    _run_hooks(ctx, rec.hooks, "poststart", hook_state(rec.id, rec.pid, rec.bundle, "running", rec.annotations),
               fatal=False)


def cmd_state(ctx: Ctx, o) -> int:
    import json
    from .state import state_doc
    rec, status = _load(ctx, o.id)
    print(json.dumps(state_doc(rec, status), indent=2))
    return 0


def cmd_kill(ctx: Ctx, o) -> int:
    from .state import parse_signal
    sig = parse_signal(o.signal)
    rec, status = _load(ctx, o.id)
    if status == "stopped":
        raise _err("container not running", o.id)
    if o.all:
        from ..cgroups import Cgroup
        pids = Cgroup(rec.cgroup).pids() or [rec.pid]
    else:
        pids = [rec.pid]
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    return 0


def _kill_all(rec) -> None:
    """SIGKILL the init and everything in the container's cgroup, and wait until they are gone."""
    from ..cgroups import Cgroup
    try:
        os.kill(rec.pid, 9)
    except ProcessLookupError:
        pass
    Cgroup(rec.cgroup).kill_all()
    import time
    deadline = time.monotonic() + 5
    while _proc_start_time(rec.pid) == rec.start_time and time.monotonic() < deadline:
        time.sleep(0.002)


def cmd_delete(ctx: Ctx, o) -> int:
    from .state import OciError
    try:
        rec, status = _load(ctx, o.id)
    except OciError:
        if not o.force:
            raise
        # as runc: --force of a container that does not exist (or whose state was never
        # written: an aborted create) removes what is there and succeeds
        import shutil
        shutil.rmtree(_dir(ctx, o.id), ignore_errors=True)
        return 0
    _delete(ctx, rec, status, o.force)
    return 0


def _delete(ctx: Ctx, rec, status: str, force: bool) -> None:
    if status == "running" and not force:
        raise _err("cannot delete a container that is not stopped: running (use --force)", rec.id)
    from ..cgroups import Cgroup
    if status != "stopped":
        _kill_all(rec)  # created (as runc, no --force needed) or running with --force
    cg = Cgroup(rec.cgroup)
    if cg.pids():  # processes the init left (a shared pid namespace): they go with it
        cg.kill_all()
    cg.destroy()
    if rec.host_mounts:  # made in our mount namespace (no mount namespace of its own)
        from .mounts import detach_host_root
        detach_host_root(rec.rootfs, rec.host_mounts)
    import shutil
    shutil.rmtree(_dir(ctx, rec.id), ignore_errors=True)
    from .state import hook_state
    _run_hooks(ctx, rec.hooks, "poststop", hook_state(rec.id, 0, rec.bundle, "stopped", rec.annotations), fatal=False)


def _forward_and_reap(pid: int) -> int:
    import signal
    from ..linux.forkreport import reap
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
              signal.SIGWINCH):
        signal.signal(s, lambda n, _f: os.kill(pid, n))
    code = reap(pid)
    while True:  # other orphans reparented to us (we are their subreaper)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return code


def cmd_run(ctx: Ctx, o) -> int:
    from ..linux import sys as ksys
    if not o.detach:
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)  # the init is reparented to us: we reap it
    _create(ctx, o)
    rec, status = _load(ctx, o.id)
    try:
        _start(ctx, rec, status)
    except BaseException:
        _delete(ctx, rec, "created", True)
        raise
    if o.detach:
        return 0
    code = _forward_and_reap(rec.pid)
    if not o.keep:
        _delete(ctx, rec, "stopped", True)
    return code


def cmd_exec(ctx: Ctx, o) -> int:
    import json
    rec, status = _load(ctx, o.id)
    if status != "running":
        raise _err(f"cannot exec in a {status} container", o.id)
    if o.preserve_fds:
        raise _err("--preserve-fds is not supported", o.id, "--preserve-fds")
    from . import run as R
    base = R.read_config(rec.bundle)
    if o.process:
        try:
            with open(o.process) as f:
                proc = json.load(f)
        except (OSError, ValueError) as e:
            raise _err(f"--process {o.process}: {e}", o.id, "--process") from None
    else:
        if not o.args:
            raise _err("needs a command (ARGS or --process)", o.id, "args")
        proc = dict(base.get("process") or {})
        proc["args"] = list(o.args)
        proc["terminal"] = o.tty
        if o.cwd:
            proc["cwd"] = o.cwd
        if o.env:
            proc["env"] = list(proc.get("env") or []) + o.env
        if o.user:
            uid, _, gid = o.user.partition(":")
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    spec, _rootfs, _hooks, terminal, size = _config(rec.bundle, proc)
    _warn_ignored(ctx, o.id, spec)
    console = _connect_console(o.console_socket, terminal or o.tty, o.id)
    from ..cgroups import Cgroup
    from ..linux import sys as ksys
    if not o.detach:
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pid = R.exec_in(rec.pid, spec, Cgroup(rec.cgroup), spec.args, spec.env, spec.cwd,
                        console=console, console_size=size, seccomp_cache=os.path.join(ctx.root, CACHE))
    finally:
        if console is not None:
            os.close(console)
    if o.pid_file:
        _write_atomic(os.path.abspath(o.pid_file), str(pid))
    if o.detach:
        return 0
    return _forward_and_reap(pid)


def cmd_ps(ctx: Ctx, o) -> int:
    import json
    from ..cgroups import Cgroup
    rec, _status = _load(ctx, o.id)
    pids = Cgroup(rec.cgroup).pids()
    if o.format == "json":
        print(json.dumps(pids))
        return 0
    print("PID\tCMD")
    for p in pids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        print(f"{p}\t{cmd}")
    return 0


def cmd_list(ctx: Ctx, o) -> int:
    import json
    from .state import OciError, state_doc
    out = []
    try:
        names = sorted(os.listdir(ctx.root))
    except FileNotFoundError:
        names = []
    for n in names:
        if n == CACHE:
            continue
        try:
            rec, status = _load(ctx, n)
        except OciError:
            continue
        out.append(state_doc(rec, status))
    if o.format == "json":
        print(json.dumps(out))
    elif o.quiet:
        for s in out:
            print(s["id"])
    else:
        print("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
        for s in out:
            print(f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}\t{s['owner']}")
    return 0


def cmd_features(ctx: Ctx, o) -> int:
    import json
    from ..linux import caps
    from ..linux import sys as ksys
    from .state import features
    actions = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
               "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"]
    archs = ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    nss = [n for n in ksys.NAMESPACES if n != "user"]
    print(json.dumps(features(nss, caps.NAMES, list(ksys.MOUNT_FLAGS) + list(ksys.PROPAGATION), actions, archs),
                     indent=2))
    return 0


VERBS = {"create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill, "delete": cmd_delete,
         "run": cmd_run, "exec": cmd_exec, "ps": cmd_ps, "list": cmd_list, "features": cmd_features}


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
