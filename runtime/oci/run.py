"""Carrying out an OCI runtime spec: what `runc run` does, in the foreground; the executor's
public names, importable from here. Each concern has its module:

    bundle.py         config.json read and parsed (spec.py), rootfs resolved, HOME (host side)
    launch.py         start / run / exec_in: cgroup, namespaces and the fork protocol (parent side)
    seccomp_cache.py  the seccomp program compiled before the fork, and the CLI's on-disk cache
    init.py           the container's init and the last steps of every process (after the fork)
    mounts.py         the root, the spec's mounts, pivot_root, masked and read-only paths
    devices.py        /dev: default and spec device nodes, links
    credentials.py    rlimits, user and groups, capabilities, no_new_privs
    console.py        the pty sent over a console socket
    errors.py         RunError
    ../linux/forkreport.py  fork an intermediate and a final process, hear back from them

    parent (this process, child subreaper): compiles the seccomp filter, if any
      `- intermediate: joins/creates namespaces, forks, exits
           `- init (PID 1 of a new pid namespace): mounts, pivot_root, masks, hostname, rlimits,
              user, capabilities, no_new_privs, seccomp, closes every fd, chdir, execve

Everything the init uses is imported before the fork; after it enters the container's mount
namespace it makes raw syscalls only (security.md 0.4)."""

from __future__ import annotations

from .bundle import load_bundle, read_config, spec_from
from .errors import RunError
from .launch import CreateOptions, ExitStatus, Started, exec_in, reap, run, run_bundle, start

__all__ = ["CreateOptions", "ExitStatus", "RunError", "Started", "exec_in", "load_bundle", "read_config", "reap",
           "run", "run_bundle", "spec_from", "start"]
