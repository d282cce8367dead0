"""hostUsers: false pods, the pure parts: the pod's range of host ids (runtime.idrange), the
config.json of a container joining its pod's pinned user namespace, the sandbox config from a
v1 Pod."""

import pytest

from runtime.idrange import (FIRST_SLOT, IDS_PER_POD, SLOTS, IdRangeError, candidate_slots, parse_subid, pick_slot,
                             preferred_slot, slot_range)


def test_a_slot_is_65536_ids_above_the_hosts_own_and_below_2_31():
    assert slot_range(FIRST_SLOT) == (65536, 65536)
    assert slot_range(FIRST_SLOT + SLOTS - 1) == (2**31 - 65536, 65536)
    for uid in ("a", "b", "0f6f1c1e-1c2d-4c55-9c1a-000000000000"):
        s = preferred_slot(uid)
        assert FIRST_SLOT <= s < FIRST_SLOT + SLOTS
        assert preferred_slot(uid) == s  # stable: the same pod, the same range, across restarts


def test_taken_and_reserved_slots_are_skipped_around_the_ring():
    uid = "pod-x"
    s = preferred_slot(uid)
    assert pick_slot(uid, set()) == s
    nxt = FIRST_SLOT + (s - FIRST_SLOT + 1) % SLOTS
    assert pick_slot(uid, {s}) == nxt
    # a host user's /etc/subuid range over the preferred slot (even one id of it) moves the pod on
    assert pick_slot(uid, set(), [(s * IDS_PER_POD + 100, 1)]) == nxt
    assert pick_slot(uid, set(), [(s * IDS_PER_POD - 10, 10)]) == s  # ends just before it
    last = FIRST_SLOT + SLOTS - 1
    assert list(candidate_slots("x", set(range(FIRST_SLOT, last)))) == [last]  # the ring wraps
    with pytest.raises(IdRangeError, match="no free range"):
        pick_slot(uid, set(range(FIRST_SLOT, FIRST_SLOT + SLOTS)))


def test_subid_files_are_parsed_as_shadow_does():
    text = "alice:100000:65536\n# a comment\nbob:165536:65536\nbroken:x:1\n\n"
    assert parse_subid(text) == [(100000, 65536), (165536, 65536)]


def test_a_container_of_a_userns_pod_joins_its_pinned_namespace():
    """The pod's user namespace is joined by path: no new one, no maps in linux (the executor
    refuses maps with a path), no rootfs idmap annotation (runtime.rootfs idmaps the layers);
    bind mounts (the pod's /etc files, volumes) are still idmapped to the pod's range."""
    from runtime.image.manifest import ImageConfig
    from runtime.oci.generate import ContainerRequest, generate
    from runtime.oci.spec import parse
    img = ImageConfig("amd64", "linux", (), cmd=("sh",), env=("PATH=/bin",))
    vol = {"destination": "/etc/hosts", "type": "bind", "source": "/run/p/etc/hosts", "options": ["rbind", "rw"]}
    nss = {"pid": None, "mount": None, "network": "/run/p/ns/net", "ipc": "/run/p/ns/ipc", "uts": "/run/p/ns/uts",
           "user": "/run/p/ns/user"}
    d = generate(ContainerRequest(name="c", host_users=False, user_ids=(65536 * 5, 65536), namespaces=nss,
                                  extra_mounts=[vol]), img, "/r", "kpy/c", "v2")
    users = [n for n in d["linux"]["namespaces"] if n["type"] == "user"]
    assert users == [{"type": "user", "path": "/run/p/ns/user"}]
    assert "uidMappings" not in d["linux"] and "io.kubelet-py.rootfs-idmap" not in d["annotations"]
    m = [{"containerID": 0, "hostID": 65536 * 5, "size": 65536}]
    assert d["mounts"][-1]["uidMappings"] == m and d["mounts"][-1]["gidMappings"] == m
    spec = parse(d)
    assert ("user", "/run/p/ns/user") in spec.namespaces and spec.uid_mappings == ()
    assert spec.mounts[-1].uid_mappings == ((0, 65536 * 5, 65536),)


def test_host_users_reaches_the_sandbox_config():
    from kubelet_py.pods.translate import sandbox_config
    pod = {"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert sandbox_config(pod).host_users is True  # unset: the host's, as upstream
    pod["spec"]["hostUsers"] = True
    assert sandbox_config(pod).host_users is True
    pod["spec"]["hostUsers"] = False
    assert sandbox_config(pod).host_users is False


def test_ping_group_range_of_a_userns_pod_covers_its_ids_only():
    from runtime.sandbox import POD_NET_SYSCTLS, userns_net_sysctls
    s = userns_net_sysctls(65536)
    assert s["net.ipv4.ping_group_range"] == "0 65535"
    assert {k: v for k, v in s.items() if k != "net.ipv4.ping_group_range"} == \
        {k: v for k, v in POD_NET_SYSCTLS.items() if k != "net.ipv4.ping_group_range"}
