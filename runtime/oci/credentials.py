"""Who a container process is (kernel edge, in the forked process, in runc's order): resource
limits, then process.user (groups, gid, uid, umask) with the capability sets around the switch,
then no_new_privs. init.py's `become` calls these in order, with seccomp where runc puts it."""

from __future__ import annotations

import os
import resource

from ..linux import sys as ksys
from ..linux.caps import last_cap
from .spec import Spec

_RLIMIT = {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}


def set_rlimits(rlimits: list[tuple[str, int, int]]) -> None:
    if not any(name == "RLIMIT_NOFILE" for name, _s, _h in rlimits):
        # runc and the containerd shim (Go) run with the soft NOFILE limit raised to the hard
        # one, and containers inherit that; so do ours
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for name, soft, hard in rlimits:
        resource.setrlimit(_RLIMIT[name], (soft, hard))


def switch_user(spec: Spec) -> None:
    """Drop the bounding set, become the spec's uid/gid/groups keeping the capabilities across
    the switch, then set the effective, permitted, inheritable and ambient sets and the umask."""
    caps = spec.caps
    for cap in range(last_cap() + 1):
        if not caps["bounding"] >> cap & 1:
            ksys.prctl(ksys.PR_CAPBSET_DROP, cap)
    ksys.prctl(ksys.PR_SET_KEEPCAPS, 1)
    os.setgroups(spec.additional_gids)
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)
    ksys.prctl(ksys.PR_SET_KEEPCAPS, 0)
    ksys.capset(caps["effective"], caps["permitted"], caps["inheritable"])
    ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last_cap() + 1):
        if caps["ambient"] >> cap & 1 and caps["inheritable"] >> cap & 1:
            # the kernel raises an ambient cap only if it is also inheritable; runc skips
            # the others with a warning, and so do we
            ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_RAISE, cap)
    if spec.umask is not None:
        os.umask(spec.umask)


def set_no_new_privs(spec: Spec) -> None:
    if spec.no_new_privs:
        ksys.prctl(ksys.PR_SET_NO_NEW_PRIVS, 1)
