"""Which cgroup hierarchies a container's cgroup is made in (pure: from mountinfo text)."""

from __future__ import annotations

import pytest

from runtime import cgroups
from runtime.cgroups import Cgroup, parse_hierarchies

# Debian 11 with systemd's hybrid layout: comounted hierarchies, their links, name=systemd,
# an empty cgroup2, and mounts that are not hierarchies of /sys/fs/cgroup
DEBIAN = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 24 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
32 26 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
33 26 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
34 26 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset
35 26 0:33 / /sys/fs/cgroup/misc rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,misc
36 30 0:33 / /mnt/misc-again rw,relatime shared:18 - cgroup cgroup rw,misc
37 26 0:33 / /sys/fs/cgroup/misc-again rw,relatime shared:18 - cgroup cgroup rw,misc
38 26 0:34 / /sys/fs/cgroup/memory/deeper rw,relatime - cgroup cgroup rw,memory
"""


def test_every_hierarchy_below_sys_fs_cgroup_once():
    assert parse_hierarchies(DEBIAN) == [
        ("/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate"),
        ("/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
        ("/sys/fs/cgroup/net_cls,net_prio", "cgroup", "rw,net_cls,net_prio"),
        ("/sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset"),
        ("/sys/fs/cgroup/misc", "cgroup", "rw,misc"),  # listed once: the same device again is skipped
    ]


def test_pure_v2_has_no_hierarchy_below_the_root():
    text = "25 20 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    assert parse_hierarchies(text) == []


def test_a_v1_cgroup_lives_in_every_hierarchy_and_the_container_sees_the_v1_ones(monkeypatch):
    monkeypatch.setattr(cgroups, "_hierarchies", parse_hierarchies(DEBIAN))
    cg = Cgroup("kpy/pod1/c1", "v1")
    assert cg.dirs() == [f"/sys/fs/cgroup/{h}/kpy/pod1/c1" for h in
                         ("unified", "systemd", "cpu,cpuacct", "net_cls,net_prio", "cpuset", "misc")]
    # what the container's /sys/fs/cgroup binds: not the hybrid cgroup2, as runc
    assert cg.v1_mounts() == [(h, f"/sys/fs/cgroup/{h}/kpy/pod1/c1") for h in
                              ("systemd", "cpu,cpuacct", "net_cls,net_prio", "cpuset", "misc")]
    assert Cgroup("kpy/c", "v2").dirs() == ["/sys/fs/cgroup/kpy/c"]


def test_joining_a_cgroup_made_before_every_hierarchy_had_one(monkeypatch, tmp_path):
    """A container's cgroup made by an earlier kubelet-py (only in the controllers it manages):
    a process still joins it (an exec), skipping the hierarchies where it has none; a managed
    controller without it is still an error."""
    from runtime.cgroups import CgroupError
    for h in ("cpu", "freezer"):
        (tmp_path / h / "kpy" / "c").mkdir(parents=True)
        (tmp_path / h / "kpy" / "c" / "cgroup.procs").write_text("")
    (tmp_path / "blkio").mkdir()
    monkeypatch.setattr(cgroups, "_hierarchies", [(str(tmp_path / "cpu"), "cgroup", "rw,cpu"),
                                                  (str(tmp_path / "freezer"), "cgroup", "rw,freezer"),
                                                  (str(tmp_path / "blkio"), "cgroup", "rw,blkio")])
    Cgroup("kpy/c", "v1").add(42)
    assert (tmp_path / "cpu/kpy/c/cgroup.procs").read_text() == "42"
    assert (tmp_path / "freezer/kpy/c/cgroup.procs").read_text() == "42"
    monkeypatch.setattr(cgroups, "_hierarchies", [(str(tmp_path / "memory"), "cgroup", "rw,memory")])
    with pytest.raises(CgroupError):
        Cgroup("kpy/c", "v1").add(42)
