"""User namespaces (kernel edge): a new one with its uid and gid maps written, held by an fd.

A short-lived child unshares CLONE_NEWUSER; this process, root of the parent namespace, writes
the child's /proc/<pid>/uid_map and gid_map and keeps /proc/<pid>/ns/user open; the child then
exits and the fd alone keeps the namespace. A container's process joins it with setns(2) after
the namespaces it joins by path (owned by the host's user namespace) and before the ones it
creates (owned by the new one), and so do the idmapped mounts that need the namespace before the
container exists. crun makes the user namespace of an idmapped mount the same way."""

from __future__ import annotations

import os
import sys

from . import sys as ksys


def map_text(mappings) -> str:
    """The text of a uid_map/gid_map: `container-id host-id size` per line (pure)."""
    return "".join(f"{c} {h} {n}\n" for c, h, n in mappings)


def write_maps(pid: int, uid_mappings, gid_mappings, what: str) -> None:
    """Write the uid and gid maps of process `pid`'s user namespace; an error names the map."""
    for name, maps in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(map_text(maps))
        except OSError as e:
            raise OSError(e.errno, f"writing the {name} of {what} ({map_text(maps).strip()!r}): {e.strerror}") from None


def new_userns(uid_mappings, gid_mappings) -> int:
    """An fd (close-on-exec) of a new user namespace whose uid and gid maps are as given.
    Errors are OSError naming the step (the map the kernel refused)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: unshare, say so, wait for the parent to be done with us
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            ksys.unshare(ksys.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(done_r, 1)  # EOF: the parent has what it needs
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise OSError(0, "a new user namespace: the helper process could not unshare it")
        write_maps(pid, uid_mappings, gid_mappings, "a new user namespace")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def become_root(gid_too: bool = True) -> None:
    """After setns into a user namespace: be its root, with the full capability set the join
    gave. runc's order, which the container can see: the uid right after the join, the gid
    and groups only after the new namespaces are made (the IPC namespace's mqueue root is
    owned by the unsharing uid and gid, so under runc it shows the unmapped gid); hence
    `gid_too=False` first, then become_root() again."""
    os.setresuid(0, 0, 0)
    if gid_too:
        os.setgroups([])
        os.setresgid(0, 0, 0)


# ---- the way to a pod's files, for its root (a host uid of its range, not root) -----------------

def let_others_search(path: str) -> None:
    """o+x (search, not list) on a dir of ours on the way to a pod's dirs (the run root, pods/,
    containers/), whatever the umask that made it: a hostUsers: false pod's root passes."""
    mode = os.stat(path).st_mode
    if not mode & 0o001:
        os.chmod(path, (mode & 0o7777) | 0o001)


def closed_to_others(path: str) -> str | None:
    """The first dir on the way to `path` (itself included) that others may not search, or None."""
    p = os.path.abspath(path)
    while True:
        if not os.stat(p).st_mode & 0o001:
            return p
        if p == "/":
            return None
        p = os.path.dirname(p)


# ---- a pod's user namespace, with the namespaces it owns (the sandbox's) ----------------------

# the helper: a new interpreter (a spawn, never a fork of the caller: a daemon's threads may call
# pin_pod_namespaces), since only a single-threaded process may unshare a user namespace
_HELPER = "import sys; from runtime.linux.userns import helper_main; sys.exit(helper_main(sys.argv[1]))"


def helper_main(arg: str) -> int:
    """In the helper: unshare the user namespace, wait for its maps, become its root, make the
    other namespaces inside it (they belong to it), set them up, and wait for the pins. One line
    per step on stdout: `u`, then `n` (or `E why`)."""
    import json

    from .net import lo_up, write_sysctl
    req = json.loads(arg)
    try:
        ksys.unshare(ksys.CLONE_NEWUSER)
        print("u", flush=True)
        if sys.stdin.readline().strip() != "m":
            return 1
        become_root()
        ksys.unshare(req["flags"])
        if req.get("hostname") is not None:
            ksys.sethostname(req["hostname"])
        if req["flags"] & ksys.CLONE_NEWNET:
            lo_up()
            for key, value in req.get("sysctls", {}).items():
                write_sysctl(key, value)
    except OSError as e:
        print(f"E {e}", flush=True)
        return 1
    print("n", flush=True)
    sys.stdin.read()  # EOF: the namespaces are pinned
    return 0


def pin_pod_namespaces(uid_mappings, gid_mappings, pins: dict[str, str], flags: int, hostname: str | None = None,
                       sysctls: dict[str, str] | None = None, timeout: float = 10.0) -> None:
    """A new user namespace with the given maps, and in it new namespaces (`flags`: CLONE_NEWNET
    and the like) owned by it, as Kubernetes' sandboxes have them for hostUsers: false: its
    root then holds CAP_NET_ADMIN and CAP_SYS_ADMIN over them (sysctls, sysfs). Each is
    bind-mounted at `pins[name]` (`user`, `net`, `ipc`, `uts`: the /proc/<pid>/ns names; the
    files exist). `hostname`, `lo` up and the network `sysctls` are set inside. Nothing is
    left running. Errors are OSError naming the step."""
    import json
    import subprocess

    from .sealed import child_python_path
    proc = subprocess.Popen([sys.executable, "-S", "-c", _HELPER,
                             json.dumps({"flags": flags, "hostname": hostname, "sysctls": sysctls or {}})],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": child_python_path()},
                            text=True)
    try:
        def step(want: str, what: str) -> None:
            line = _readline(proc, timeout)
            if line != want:
                if line.startswith("E "):
                    err = line[2:]
                else:  # it exited: its traceback says why
                    proc.wait(timeout)
                    err = proc.stderr.read().strip().splitlines()[-1:] or [""]
                    err = err[0]
                raise OSError(0, f"the pod's user namespace: {what}: {err or 'the helper exited'}")

        step("u", "unsharing it")
        write_maps(proc.pid, uid_mappings, gid_mappings, "the pod's user namespace")
        proc.stdin.write("m\n")
        proc.stdin.flush()
        step("n", "making the namespaces it owns")
        for name, target in pins.items():
            ksys.mount(f"/proc/{proc.pid}/ns/{name}", target, None, ksys.MS_BIND)
    finally:
        if proc.poll() is None and not proc.stdin.closed:
            try:
                proc.stdin.close()  # EOF: the helper exits
            except BrokenPipeError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _readline(proc, timeout: float) -> str:
    import select
    if not select.select([proc.stdout], [], [], timeout)[0]:
        raise OSError(0, f"the pod's user namespace: its helper did not answer within {timeout}s")
    return proc.stdout.readline().strip()
