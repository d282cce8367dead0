"""User namespaces (kernel edge): a new one with its uid and gid maps written, held by an fd.

A short-lived child unshares CLONE_NEWUSER; this process, root of the parent namespace, writes
the child's /proc/<pid>/uid_map and gid_map and keeps /proc/<pid>/ns/user open; the child then
exits and the fd alone keeps the namespace. A container's process joins it with setns(2) after
the namespaces it joins by path (owned by the host's user namespace) and before the ones it
creates (owned by the new one), and so do the idmapped mounts that need the namespace before the
container exists. crun makes the user namespace of an idmapped mount the same way."""

from __future__ import annotations

import os

from . import sys as ksys


def map_text(mappings) -> str:
    """The text of a uid_map/gid_map: `container-id host-id size` per line (pure)."""
    return "".join(f"{c} {h} {n}\n" for c, h, n in mappings)


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
        for name, maps in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(map_text(maps))
            except OSError as e:
                raise OSError(e.errno, f"writing the {name} of a new user namespace ({map_text(maps).strip()!r}): "
                              f"{e.strerror}") from None
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
