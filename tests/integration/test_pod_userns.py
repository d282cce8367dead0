"""hostUsers: false pods through the runtime's pod API (issue 15, item 6: its last piece): the
sandbox's user namespace maps the pod's own range of host ids and owns the pod's net/ipc/uts
namespaces; every container of the pod runs in it, on a rootfs whose layers are idmapped to it,
and removing the pod leaves no mount, pinned namespace, cgroup or claim on the range.

Only on the host, not in the cgroup v2 VM group where the other user-namespace tests run again:
the VM's kernel (6.1) cannot idmap the tmpfs its test dirs live on (tmpfs from 6.3), and a pod's
rootfs needs idmapped layers (see test_oci_idmap.py, which is left out of the VM for the same
reason)."""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import tempfile
import time

import pytest

from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.leaks import mounts_under
from tests.integration.runtime_helpers import pod_api_env

pytestmark = [pytest.mark.root]

NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: an fd of the user namespace that owns it


@pytest.fixture
def env():
    """pod_api_env below /var/tmp, every dir on the way open to others (the pod's root is a host
    uid of its range, not root; pytest's tmp dirs are 0700)."""
    d = tempfile.mkdtemp(prefix="kpy-podu-", dir="/var/tmp")
    os.chmod(d, 0o755)
    try:
        yield from pod_api_env(pathlib.Path(d))
    finally:
        shutil.rmtree(d)


def _req(name, script, **kw):
    from runtime.oci.generate import ContainerRequest
    return ContainerRequest(name=name, command=["sh", "-c", script], **kw)


def _wait_log(path: str, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and text in open(path).read():
            break
        time.sleep(0.02)
    return "".join(line.split(" ", 3)[3] for line in open(path).read().splitlines(keepends=True))


def _owner_ino(ns_path: str) -> int:
    fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
        try:
            return os.fstat(owner).st_ino
        finally:
            os.close(owner)
    finally:
        os.close(fd)


def _write_etc_files(sb) -> None:  # what the network layer writes (netns.setup_pod_network)
    for name, text in (("hosts", "127.0.0.1 localhost\n"), ("hostname", f"{sb.hostname}\n"),
                       ("resolv.conf", "nameserver 10.96.0.10\n")):
        with open(os.path.join(sb.files_dir, name), "w") as f:
            f.write(text)


PROBE = r"""
echo "uidmap $(cat /proc/self/uid_map)"
echo "gidmap $(cat /proc/self/gid_map)"
echo "id $(id -u):$(id -g)"
ls -ln / | awk '$NF == "bin" { print "bin-owner", $3 ":" $4 }'
ls -ln /etc/hosts | awk '{ print "hosts-owner", $3 ":" $4 }'
cat /etc/hosts | sed 's/^/hosts /'
touch /written-by-root && echo rootfs-write-ok
echo data > /bin/changed && echo layer-write-ok
ip addr add 10.99.0.1/32 dev lo && echo ip-ok
echo "portrange $(cat /proc/sys/net/ipv4/ip_local_port_range)"
echo "pinggroup $(cat /proc/sys/net/ipv4/ping_group_range)"
hostname | sed 's/^/hostname /'
echo done; exec sleep 60
"""


def test_a_userns_pod_runs_in_its_own_range_through_the_api(env):
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    cfg = api.PodConfig(uid="podu-one", name="uns", host_users=False)
    sb = api.run_pod_sandbox(paths, cfg)
    first, count = sb.user_ids
    # the run root lets the pod's root pass (search, not list), the pod's dir its root's group only
    assert os.stat(paths.run_root).st_mode & 0o001
    st = os.stat(sb.dir)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o710, 0, first)
    assert count == 65536 and first % 65536 == 0 and 65536 <= first < 2**31, sb.user_ids
    # the pod's namespaces are made inside its user namespace: owned by it, not by the host's
    userns_ino = os.stat(sb.namespaces["user"]).st_ino
    assert userns_ino != os.stat("/proc/self/ns/user").st_ino
    for t in ("network", "ipc", "uts"):
        assert _owner_ino(sb.namespaces[t]) == userns_ino, t
    _write_etc_files(sb)
    log_a, log_b = (api.pod_log_path(env["logs"], cfg, n) for n in ("a", "b"))
    a = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                             _req("a", PROBE, cap_add=["NET_ADMIN"], sysctls={"net.ipv4.ip_local_port_range": "40000 50000"}),
                             log_path=log_a)
    api.start_container(paths, cfg.uid, a)
    out = _wait_log(log_a, "done").splitlines()
    assert f"uidmap 0 {first} {count}" in [" ".join(x.split()) for x in out], out
    assert f"gidmap 0 {first} {count}" in [" ".join(x.split()) for x in out], out
    for want in ("id 0:0", "bin-owner 0:0", "hosts-owner 0:0", "hosts 127.0.0.1 localhost", "rootfs-write-ok",
                 "layer-write-ok", "ip-ok", "portrange 40000\t50000", f"pinggroup 0\t{count - 1}", "hostname uns", "done"):
        assert want in out, (want, out)
    # its writes land in its upper dir as the pod's root, the image's layers unchanged
    upper = os.path.join(paths.root, "containers", a, "upper")
    for p in ("written-by-root", "bin/changed"):
        st = os.stat(os.path.join(upper, p))
        assert (st.st_uid, st.st_gid) == (first, first), p
    for layer in store.image(DEFAULT_IMAGE).layer_dirs:
        assert not os.path.exists(os.path.join(layer, "bin", "changed"))
        assert os.stat(os.path.join(layer, "bin")).st_uid == 0
    # nothing but the overlay is mounted on the host for the rootfs (the idmapped layers live
    # only in the overlay)
    assert [m for m in mounts_under(paths.root)] == []
    # a second container of the pod: the same mapping, the same network namespace; its user
    # runAsUser 1000 is host uid first + 1000
    # and a volume below a dir closed to others (as the kubelet's state root): bound idmapped,
    # its root's writes land as the host's root
    vol = os.path.join(paths.root, "private", "vol")
    os.makedirs(vol)
    os.chmod(os.path.dirname(vol), 0o700)
    os.chmod(vol, 0o777)  # runAsUser 1000 writes it
    b = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                             _req("b", "cat /proc/self/uid_map; ip -o addr show lo; id -u; echo done; exec sleep 60",
                                  uid=1000, gid=1000, extra_mounts=[{"destination": "/vol", "type": "bind", "source": vol,
                                                                     "options": ["rbind", "rw"]}]), log_path=log_b)
    pid_b = api.start_container(paths, cfg.uid, b)
    out_b = _wait_log(log_b, "done")
    assert out_b.split()[:3] == ["0", str(first), str(count)] and "10.99.0.1/32" in out_b and "\n1000\n" in out_b, out_b
    with open(f"/proc/{pid_b}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(first + 1000)] * 4, uids
    # exec into it: the namespace's root again
    code, out_x, _ = api.exec_sync(paths, cfg.uid, a, ["sh", "-c", "id -u; cat /proc/self/uid_map; ls -ln /written-by-root"])
    assert code == 0 and out_x.split()[:4] == [b"0", b"0", str(first).encode(), str(count).encode()], out_x
    assert out_x.split()[6:8] == [b"0", b"0"], out_x
    code, out_v, err_v = api.exec_sync(paths, cfg.uid, b, ["sh", "-c", "ls -ldn /vol; echo x > /vol/f"])
    assert code == 0 and out_v.split()[2:4] == [b"0", b"0"], (out_v, err_v)  # the host root's dir: root's inside
    st = os.stat(os.path.join(vol, "f"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # on disk as the ids inside, not the range's
    for cid in (a, b):
        api.stop_container(paths, cfg.uid, cid, grace=1)
        api.remove_container(store, paths, cfg.uid, cid)
    api.remove_pod_sandbox(store, paths, cfg.uid)
    assert mounts_under(paths.run_root, paths.root) == []  # no rootfs, no pinned namespace
    ranges = os.path.join(paths.run_root, "userns-ranges")
    assert [n for n in os.listdir(ranges) if not n.startswith(".")] == []  # its range is free again
    # (the pod's dir, its cgroups and the containers' state: the fixture's leak check)


def test_two_pods_get_disjoint_ranges_and_each_its_own_namespace(env):
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    sbs, maps = [], []
    for uid in ("podu-two", "podu-three"):
        cfg = api.PodConfig(uid=uid, name=uid, host_users=False, etc_files=False)
        sbs.append(api.run_pod_sandbox(paths, cfg))
        log = api.pod_log_path(env["logs"], cfg, "c")
        cid = api.create_container(store, paths, uid, DEFAULT_IMAGE, _req("c", "cat /proc/self/uid_map; echo done"),
                                   log_path=log)
        api.start_container(paths, uid, cid)
        api.wait_container(paths, uid, cid, 10)
        maps.append(_wait_log(log, "done").split()[:3])
    (f1, n1), (f2, n2) = (sb.user_ids for sb in sbs)
    assert f1 + n1 <= f2 or f2 + n2 <= f1, (sbs[0].user_ids, sbs[1].user_ids)
    assert maps == [["0", str(f1), str(n1)], ["0", str(f2), str(n2)]]
    assert os.stat(sbs[0].namespaces["user"]).st_ino != os.stat(sbs[1].namespaces["user"]).st_ino
    # the range is the pod's while it lives: a sandbox made again for the same uid gets it back
    from runtime.sandbox import claim_user_ids
    assert claim_user_ids(paths.run_root, "podu-two") == [f1, n1]
    for sb in sbs:
        api.remove_pod_sandbox(store, paths, sb.uid)
    assert mounts_under(paths.run_root, paths.root) == []


def test_a_pod_of_the_hosts_users_is_unchanged_and_refusals_name_hostusers(env):
    from runtime import pod as api
    from runtime.errors import RuntimeFailure
    paths, store = env["paths"], env["store"]
    with pytest.raises(RuntimeFailure, match="hostUsers: false cannot be used with hostNetwork") as e:
        api.run_pod_sandbox(paths, api.PodConfig(uid="podu-hostnet", name="x", host_users=False, host_network=True))
    assert (e.value.kind, e.value.field) == ("INVALID_ARGUMENT", "hostUsers")
    cfg = api.PodConfig(uid="podu-host", name="h", etc_files=False)
    sb = api.run_pod_sandbox(paths, cfg)
    assert sb.user_ids is None and "user" not in sb.namespaces
    with pytest.raises(RuntimeFailure, match="hostUsers: false is the pod's") as e:
        api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                             _req("c", "true", host_users=False, user_ids=(65536, 65536)), log_path=env["logs"] + "/c")
    assert (e.value.kind, e.value.field) == ("INVALID_ARGUMENT", "hostUsers")
    log = api.pod_log_path(env["logs"], cfg, "c")
    cid = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE, _req("c", "cat /proc/self/uid_map; echo done"),
                               log_path=log)
    api.start_container(paths, cfg.uid, cid)
    assert _wait_log(log, "done").split()[:3] == ["0", "0", "4294967295"]
    api.remove_pod_sandbox(store, paths, cfg.uid)


def test_a_run_root_the_pods_root_cannot_reach_is_refused_naming_it(tmp_path):
    """pytest's tmp dirs are 0700: the pod's root could not reach its rootfs below them."""
    from runtime.errors import RuntimeFailure
    from runtime.sandbox import create_sandbox
    run = tmp_path / "run"
    with pytest.raises(RuntimeFailure, match="is closed to others") as e:
        create_sandbox(str(run), "podu-closed", "x", cgroup_root=f"kpytest-closed-{os.urandom(4).hex()}", host_users=False)
    assert (e.value.kind, e.value.field) == ("FAILED_PRECONDITION", "hostUsers")
    assert os.listdir(run / "pods") == [] and mounts_under(str(run)) == []


def test_a_userns_pod_sharing_its_pid_namespace(env):
    """shareProcessNamespace: the pod's PID 1 (runtime.podinit) makes the pid namespace inside
    the pod's user namespace, so that its containers may mount their /proc."""
    from runtime import pod as api
    paths, store = env["paths"], env["store"]
    cfg = api.PodConfig(uid="podu-pid", name="p", host_users=False, share_pid=True, etc_files=False)
    sb = api.run_pod_sandbox(paths, cfg)
    sb = api.load_sandbox(paths.run_root, cfg.uid)
    assert _owner_ino(sb.namespaces["pid"]) == os.stat(sb.namespaces["user"]).st_ino
    log = api.pod_log_path(env["logs"], cfg, "c")
    cid = api.create_container(store, paths, cfg.uid, DEFAULT_IMAGE,
                               _req("c", "ps -o pid,user,comm | sed 's/^ *//'; echo done"), log_path=log)
    api.start_container(paths, cfg.uid, cid)
    out = _wait_log(log, "done").splitlines()
    assert any(x.split()[:2] == ["1", "65535"] for x in out), out  # pause's uid, mapped in the pod's range
    api.remove_pod_sandbox(store, paths, cfg.uid)
