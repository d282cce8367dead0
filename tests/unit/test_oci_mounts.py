"""The pure parts of the container's mounts: mount options to flags, and which mount holds a
path according to /proc/self/mountinfo (the one rootfsPropagation may have to make private)."""

from __future__ import annotations

from runtime.linux import sys as ksys
from runtime.oci.mounts import mount_flags, mount_ids_at, parent_mount

MOUNTINFO = """\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:40 / /tmp rw shared:2 - tmpfs tmpfs rw
41 40 0:41 / /tmp/a\\040b rw - tmpfs tmpfs rw
42 40 0:42 / /tmp/ab rw master:5 - tmpfs tmpfs rw
43 41 0:43 / /tmp/a\\040b rw shared:9 - tmpfs tmpfs rw
"""


def test_the_mount_holding_a_path():
    assert parent_mount(MOUNTINFO, "/var/lib/x") == ("/", ["shared:1"])
    assert parent_mount(MOUNTINFO, "/tmp/rootfs") == ("/tmp", ["shared:2"])
    assert parent_mount(MOUNTINFO, "/tmp/abc/rootfs") == ("/tmp", ["shared:2"])  # a prefix by components only
    assert parent_mount(MOUNTINFO, "/tmp/ab/rootfs") == ("/tmp/ab", ["master:5"])
    # an escaped space; of two mounts stacked on one point, the later (the one on top)
    assert parent_mount(MOUNTINFO, "/tmp/a b/rootfs") == ("/tmp/a b", ["shared:9"])
    assert parent_mount(MOUNTINFO, "/tmp") == ("/tmp", ["shared:2"])


def test_mount_flags_split_flags_propagation_and_data():
    flags, prop, data = mount_flags(["rbind", "ro", "nosuid", "rslave", "mode=755", "rw"])
    assert flags == ksys.MS_BIND | ksys.MS_REC | ksys.MS_NOSUID  # the later rw cancels ro
    assert prop == ksys.MS_SLAVE | ksys.MS_REC and data == ["mode=755"]


def test_mount_ids_at_a_point_bottom_first():
    """Which mounts a container without a mount namespace made at its rootfs: the ids at that
    point (delete detaches only those it recorded, the top one first)."""
    assert mount_ids_at(MOUNTINFO, "/tmp/a b") == [41, 43]
    assert mount_ids_at(MOUNTINFO, "/tmp") == [40]
    assert mount_ids_at(MOUNTINFO, "/tmp/a") == []
