"""The generator's propagation (containerd's CRI WithMounts): linux.rootfsPropagation from the bind
mounts' propagation options, and the check that each propagating mount's source is on a mount
that can propagate (ensureShared / ensureSharedOrSlave), with containerd's message."""

from __future__ import annotations

import pytest

from runtime.errors import INVALID_ARGUMENT
from runtime.image.manifest import ImageConfig
from runtime.oci.generate import ContainerRequest, default_mounts, generate, mount_propagation
from runtime.oci.spec import SpecError, parse

IMG = ImageConfig("amd64", "linux", (), cmd=("true",))
MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /srv/shared rw shared:2 - tmpfs tmpfs rw
41 27 0:41 / /srv/slave rw master:5 - tmpfs tmpfs rw
42 27 0:42 / /srv/both rw shared:7 master:5 - tmpfs tmpfs rw
43 40 0:43 / /srv/shared/private rw - tmpfs tmpfs rw
"""
FIRST = len(default_mounts("v1"))


def _bind(src: str, prop: str, dest: str = "/data") -> dict:
    return {"destination": dest, "type": "bind", "source": src, "options": ["rbind", prop, "rw"]}


def _doc(*mounts: dict, privileged: bool = False, mountinfo: str = MOUNTINFO, **kw) -> dict:
    return generate(ContainerRequest(name="c", extra_mounts=list(mounts), privileged=privileged, **kw), IMG, "/r",
                    "kpy/c", "v1", mountinfo=mountinfo)


def test_no_propagating_mount_leaves_the_runtime_default():
    doc = _doc(_bind("/srv/shared/x", "rprivate"), _bind("/anything", "rprivate", "/b"))
    assert "rootfsPropagation" not in doc["linux"]


@pytest.mark.parametrize("props,root", [
    (["rslave"], "rslave"),
    (["rshared"], "rshared"),
    (["rslave", "rshared"], "rshared"),  # Bidirectional wins, whatever the order
    (["rshared", "rslave"], "rshared"),
    (["rprivate", "rslave", "rprivate"], "rslave"),
])
def test_root_propagation_as_containerd_sets_it(props, root):
    mounts = [_bind("/srv/shared/v", p, f"/m{i}") for i, p in enumerate(props)]
    doc = _doc(*mounts, privileged=True)
    assert doc["linux"]["rootfsPropagation"] == root
    assert parse(doc).propagation == root  # and the executor takes the document as it is
    # the mounts keep their own options: the executor applies each after its bind
    assert [m["options"][1] for m in doc["mounts"][FIRST:]] == props


@pytest.mark.parametrize("src", ["/srv/shared", "/srv/shared/dir/file", "/srv/slave/x", "/srv/both"])
def test_host_to_container_needs_a_shared_or_slave_source(src):
    assert mount_propagation([_bind(src, "rslave")], FIRST, MOUNTINFO, realpath=str) == "rslave"


@pytest.mark.parametrize("src,point", [("/var/lib/x", "/"), ("/srv/shared/private/d", "/srv/shared/private"),
                                       ("/srv/sharedx/d", "/")])  # a prefix by path components only
def test_host_to_container_on_a_private_mount_is_refused_naming_the_path(src, point):
    with pytest.raises(SpecError) as e:
        _doc(_bind("/srv/shared/ok", "rprivate", "/a"), _bind(src, "rslave", "/data"))
    assert e.value.kind == INVALID_ARGUMENT and e.value.field == f"mounts[{FIRST + 1}]"
    assert f'path "{src}" is mounted on "{point}" but it is not a shared or slave mount' in str(e.value)
    assert "/data (rslave)" in str(e.value)


@pytest.mark.parametrize("src,ok", [("/srv/shared/x", True), ("/srv/both/x", True), ("/srv/slave/x", False),
                                    ("/var/x", False)])
def test_bidirectional_needs_a_shared_source(src, ok):
    if ok:
        assert _doc(_bind(src, "rshared"), privileged=True)["linux"]["rootfsPropagation"] == "rshared"
        return
    with pytest.raises(SpecError) as e:
        _doc(_bind(src, "rshared"), privileged=True)
    assert e.value.field == f"mounts[{FIRST}]"
    assert "but it is not a shared mount" in str(e.value) and f'path "{src}"' in str(e.value)


def test_symlinks_in_the_source_are_resolved_before_the_lookup():
    """containerd resolves the host path first: a link on a private mount to a shared one is
    fine, and a link on a shared mount to a private one is not."""
    links = {"/var/link": "/srv/shared/target", "/srv/shared/link": "/var/private"}
    assert mount_propagation([_bind("/var/link", "rslave")], FIRST, MOUNTINFO, realpath=links.get) == "rslave"
    with pytest.raises(SpecError, match='path "/var/private" is mounted on "/"'):
        mount_propagation([_bind("/srv/shared/link", "rslave")], FIRST, MOUNTINFO, realpath=links.get)


def test_only_bind_mounts_are_checked():
    tmpfs = {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["rslave", "size=1m"]}
    assert mount_propagation([tmpfs], FIRST, MOUNTINFO, realpath=str) is None


def test_the_real_sources_are_read_from_this_process_mountinfo(tmp_path):
    """Without `mountinfo` the generator reads this process's: a dir under a test's tmp dir is
    found on some mount, and the error (or not) follows that mount's propagation."""
    with open("/proc/self/mountinfo") as f:
        mine = f.read()
    from runtime.oci.mounts import parent_mount
    _point, tags = parent_mount(mine, str(tmp_path))
    shared = any(t.startswith(("shared:", "master:")) for t in tags)
    req = ContainerRequest(name="c", extra_mounts=[_bind(str(tmp_path), "rslave")])
    if shared:
        assert generate(req, IMG, "/r", "kpy/c", "v1")["linux"]["rootfsPropagation"] == "rslave"
    else:
        with pytest.raises(SpecError, match="not a shared or slave mount"):
            generate(req, IMG, "/r", "kpy/c", "v1")
