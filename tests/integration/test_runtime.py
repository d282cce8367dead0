"""The container runtime, checked from inside the container (root, real kernel)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runtime.image.store import ImageStore
from runtime.image.testimages import DEFAULT_IMAGE, LAYERED_IMAGE
from tests.integration.leaks import cgroups_under
from tests.integration.runtime_helpers import run_container, runtime_env

pytestmark = [pytest.mark.root, pytest.mark.cgroups]


@pytest.fixture
def env(tmp_path):
    yield from runtime_env(tmp_path, layered=True)


run = run_container


def test_pid1_hostname_and_isolation(env):
    out = run(env, "--hostname", "podname", script="echo $$; hostname; ls /proc | grep -c '^[0-9]'").stdout.split()
    assert out[0] == "1"
    assert out[1] == "podname"
    assert int(out[2]) <= 3  # sh, ls, grep: no host process is visible


def test_masked_and_readonly_paths(env):
    p = run(env, script="echo k=$(cat /proc/kcore | wc -c); echo f=$(ls -A /sys/firmware | wc -l);"
                        " echo 1 > /proc/sys/vm/drop_caches && echo W1; echo x > /sys/kernel/profiling && echo W2;"
                        " echo ok", check_rc=0)
    lines = p.stdout.split()
    assert "k=0" in lines and "f=0" in lines, p.stdout
    assert "W1" not in lines and "W2" not in lines and lines[-1] == "ok"


def test_mount_and_reboot_are_refused(env):
    p = run(env, script="mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>&1; echo m=$?; reboot -f 2>&1; echo r=$?", check_rc=0)
    lines = p.stdout.splitlines()
    m = next(i for i, ln in enumerate(lines) if ln.startswith("m="))
    # busybox words mount's EPERM "permission denied (are you root?)"
    assert lines[m] in ("m=1", "m=255") and "permission denied" in " ".join(lines[:m]).lower(), lines
    assert lines[-1] != "r=0" and "Operation not permitted" in " ".join(lines[m + 1:-1]), lines


def test_capabilities_and_no_new_privs(env):
    status = run(env, script="grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status").stdout
    assert "CapEff:\t00000000a80425fb" in status and "CapBnd:\t00000000a80425fb" in status
    assert "NoNewPrivs:\t0" in status
    status = run(env, "--no-new-privs", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
                 script="grep -E '^(CapEff|NoNewPrivs)' /proc/self/status").stdout
    assert "CapEff:\t0000000000001000" in status and "NoNewPrivs:\t1" in status
    status = run(env, "--privileged", script="grep -E '^Cap(Eff|Bnd)' /proc/self/status").stdout.split()
    with open("/proc/self/status") as f:
        host_bnd = next(line.split()[1] for line in f if line.startswith("CapBnd"))
    assert status[1] == status[3] == host_bnd  # all the host can give


def test_user_from_the_images_passwd(env):
    assert run(env, "--user", "app", script="id -u; id -g").stdout.split() == ["1000", "1000"]
    assert run(env, "--user", "1234:5678", script="id -u; id -g").stdout.split() == ["1234", "5678"]
    p = run(env, "--user", "nosuchuser", script="true", check_rc=1)
    assert "nosuchuser" in p.stderr and "not found" in p.stderr
    p = run(env, "--run-as-non-root", script="echo RAN", check_rc=1)
    assert "runAsNonRoot" in p.stderr and "RAN" not in p.stdout
    assert run(env, "--run-as-non-root", "--user", "app", script="id -u").stdout.strip() == "1000"


def test_working_dir_is_created(env):
    assert run(env, "--workdir", "/srv/new/dir", script="pwd").stdout.strip() == "/srv/new/dir"


def test_layers_whiteouts_and_writes_stay_in_the_container(env):
    p = run(env, image=LAYERED_IMAGE, script="cat /etc/layer3.txt; ls /opt/old; test -e /etc/layer1-only.txt || "
                                             "echo gone; echo new > /etc/layer3.txt; cat /etc/layer3.txt")
    assert p.stdout.split() == ["layer", "3", "b.txt", "gone", "new"]
    store = ImageStore(env["root"])
    for d in store.image(LAYERED_IMAGE).layer_dirs:
        f = os.path.join(d, "etc", "layer3.txt")
        if os.path.exists(f):
            assert open(f).read() == "layer 3\n"  # the snapshot is untouched


def test_an_image_of_120_layers_runs(env):
    """Far past what full snapshot paths fit in the one-page overlay options (about 50)."""
    from runtime.image.archive import import_path
    from runtime.image.build import TarEntry, build_image, layer_from_tar, make_tar, write_oci_layout
    from runtime.image.testimages import base_entries
    layers = [layer_from_tar(make_tar(base_entries()))]
    for i in range(1, 120):
        entries = [TarEntry("layers", "dir"), TarEntry(f"layers/{i}", data=f"{i}\n".encode())]
        if i > 1:
            entries.append(TarEntry(f"layers/.wh.{i - 1}"))  # each layer deletes its parent's file
        layers.append(layer_from_tar(make_tar(entries), None))
    layout = str(env["tmp"] / "many")
    write_oci_layout(layout, {"kubelet-py.local/many:120": build_image(layers, cmd=["sh"])})
    import_path(ImageStore(env["root"]), layout)
    p = run(env, image="kubelet-py.local/many:120", script="ls /layers; cat /layers/*; test -x /bin/busybox && echo base")
    assert p.stdout.split() == ["119", "119", "base"], p.stdout


def test_memory_limit_oom_kill(env):
    p = run(env, "--memory", "16Mi", script="x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
            check_rc=137)
    assert "OOMKilled" in p.stderr and "survived" not in p.stdout


def test_cgroup_files_hold_computed_values(env):
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers") and open("/sys/fs/cgroup/cgroup.controllers").read().split()
    if v2:
        script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/pids.max"
        expect = ["67108864", "50000", "100000", "20", "50"]
    else:
        script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                  "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/pids/pids.max")
        expect = ["67108864", "50000", "100000", "512", "50"]
    assert run(env, "--memory", "64Mi", "--cpu", "500m", "--pids", "50", script=script).stdout.split() == expect


def test_no_agent_fd_reaches_the_container(env):
    fds = run(env, script="ls /proc/self/fd").stdout.split()
    assert sorted(fds) == ["0", "1", "2", "3"]  # 3 is ls's own handle on the directory


def test_exit_codes_and_signals(env):
    run(env, script="exit 42", check_rc=42)
    # PID 1 of a pid namespace ignores signals it has no handler for, even SIGKILL from
    # inside (runc behaves the same); a killed child shows as 128+9
    run(env, script="sleep 10 & kill -9 $!; wait $!", check_rc=137)


def test_read_only_rootfs(env):
    p = run(env, "--read-only", script="touch /x && echo wrote; echo done")
    assert "wrote" not in p.stdout and "Read-only" in p.stderr


def test_cleanup_after_failed_start(env):
    p = run(env, script=None, check_rc=None)  # busybox's Cmd is sh: fine; now a missing binary
    p = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
                        "--cgroup-root", env["cg"], "runtime", "run", "--image", DEFAULT_IMAGE, "--", "/nope"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "nope" in p.stderr
    assert cgroups_under(env["cg"]) == []


def test_bad_bundle_field_is_named(tmp_path):
    import json
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    doc = {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/", "selinuxLabel": "x"},
           "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "process.selinuxLabel" in p.stderr
    doc["process"].pop("selinuxLabel")
    doc["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_BOGUS"}  # seccomp is supported; a bad action is not
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run([sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "linux.seccomp.defaultAction" in p.stderr


def test_device_cgroup_denies_devices_outside_the_allowlist(env):
    # CAP_MKNOD is in the default set, so the nodes can be made; the device cgroup (v1 rules
    # or the v2 BPF filter) must refuse to open kmsg, outside runc's allowlist, while tun (in
    # it) and /dev/null open. The privileged run (all devices allowed) shows that kmsg itself
    # opens on this host.
    script = ("mknod /tmp/tun c 10 200 && (exec 3</tmp/tun) && echo OPEN-TUN; mknod /tmp/kmsg c 1 11 && "
              "head -c 1 /tmp/kmsg >/dev/null && echo OPEN-KMSG; echo x > /dev/null && echo null-ok")
    assert run(env, "--privileged", script=script).stdout.split() == ["OPEN-TUN", "OPEN-KMSG", "null-ok"]
    assert run(env, script=script).stdout.split() == ["OPEN-TUN", "null-ok"]
    # privileged containers get the host's device nodes (containerd), others only runc's set
    probe = "ls /dev/kmsg /dev/full 2>&1; stat -c '%t:%T' /dev/kmsg 2>/dev/null; true"
    assert run(env, "--privileged", script=probe).stdout.split() == ["/dev/full", "/dev/kmsg", "1:b"]
    assert "/dev/kmsg" not in run(env, script=probe).stdout.split()


def test_two_containers_of_a_pod_share_net_ipc_uts_shm_not_pid(env):
    from runtime import pod as api
    from runtime.container import Paths
    from runtime.oci.generate import ContainerRequest
    paths = Paths(env["root"], env["run"], env["cg"])
    store = ImageStore(env["root"])
    api.run_pod_sandbox(paths, api.PodConfig(uid="pod-1234", name="mypod", etc_files=False))
    try:
        for cid in ("a", "b"):  # both running at once, so namespace ids cannot be recycled
            api.create_container(store, paths, "pod-1234", DEFAULT_IMAGE, ContainerRequest(name=cid, command=["sleep", "600"]),
                                 cid=cid, log_path=os.path.join(env["run"], "logs", cid, "0.log"))
            api.start_container(paths, "pod-1234", cid)
        probe = ["sh", "-c", "for n in net ipc uts pid mnt; do readlink /proc/self/ns/$n; done; hostname"]
        ca, outa, _ = api.exec_sync(paths, "pod-1234", "a", probe)
        api.exec_sync(paths, "pod-1234", "a", ["sh", "-c", "echo hi > /dev/shm/x"])
        cb, outb, _ = api.exec_sync(paths, "pod-1234", "b", probe)
        _, shm, _ = api.exec_sync(paths, "pod-1234", "b", ["cat", "/dev/shm/x"])
        first, second = outa.decode().split(), outb.decode().split()
        assert (ca, cb) == (0, 0)
        assert first[:3] == second[:3]  # net, ipc, uts: the pod's pinned ones
        assert first[3] != second[3] and first[4] != second[4]  # pid and mount: each container its own
        assert first[5] == second[5] == "mypod" and shm == b"hi\n"
        mem = f"/sys/fs/cgroup/memory/{env['cg']}/kubepods/besteffort/podpod-1234"
        v2 = f"/sys/fs/cgroup/{env['cg']}/kubepods/besteffort/podpod-1234"
        assert os.path.isdir(mem) or os.path.isdir(v2)
    finally:
        api.remove_pod_sandbox(store, paths, "pod-1234", grace=0)


def test_detached_container_exec_and_rm(env, tmp_path):
    base = [sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
            "--cgroup-root", env["cg"], "--log-root", str(tmp_path / "logs")]
    cid = subprocess.run(base + ["runtime", "run", "-d", "--image", DEFAULT_IMAGE, "--name", "web", "--", "sh", "-c",
                                 "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    p = subprocess.run(base + ["runtime", "exec", cid, "--", "sh", "-c", "hostname; exit 5"], capture_output=True,
                       text=True, timeout=60)
    assert (p.returncode, p.stdout) == (5, "web\n")
    # -i: our stdin is the process's own, streamed both ways; without it, /dev/null
    p = subprocess.run(base + ["runtime", "exec", "-i", cid, "--", "sh", "-c", "tr a-z A-Z; echo err >&2"],
                       input="hello\nworld\n", capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "HELLO\nWORLD\n", "err\n"), p
    p = subprocess.run(base + ["runtime", "exec", cid, "--", "sh", "-c", "cat; ls -l /proc/self/fd/0"],
                       input="ignored\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "ignored" not in p.stdout and "/dev/null" in p.stdout, p
    # -t: a new pty of the container's own devpts, relayed; -i feeds it (then ^D)
    p = subprocess.run(base + ["runtime", "exec", "-t", cid, "--", "sh", "-c", "tty; [ -t 1 ] && echo is-a-tty; exit 6"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 6 and p.stdout.replace("\r\n", "\n") == "/dev/pts/0\nis-a-tty\n", p
    p = subprocess.run(base + ["runtime", "exec", "-t", cid, "--", "ls", "/proc/self/fd"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and sorted(p.stdout.split()) == ["0", "1", "2", "3"], p  # 3: ls's own dir fd
    p = subprocess.run(base + ["runtime", "exec", "-it", cid, "--", "sh", "-c", "read x; echo got-$x"],
                       input="typed\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "got-typed" in p.stdout, p
    p = subprocess.run(base + ["runtime", "rm", cid], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "exited 0 (Completed)" in p.stdout
    log = (tmp_path / "logs" / f"default_web_{cid}" / "web" / "0.log").read_text()
    assert " stdout F started\n" in log
    assert subprocess.run(base + ["runtime", "rm", cid], capture_output=True, timeout=60).returncode == 0  # idempotent
    p = subprocess.run(base + ["runtime", "exec", cid, "--", "true"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "no such detached container" in p.stderr


def test_memory_reservation_swappiness_and_oom_killer_reach_the_cgroup(env):
    from runtime.cgroups import Cgroup, CgroupError, Resources
    cg = Cgroup(f"{env['cg']}/memfields")
    cg.create()
    try:
        cg.apply(Resources(memory_limit=64 << 20, memory_reservation=32 << 20))
        if cg.version == "v2":
            assert open(f"{cg.dir('memory')}/memory.low").read().strip() == str(32 << 20)
            with pytest.raises(CgroupError, match="memory.swappiness: cgroup v2 has no such control"):
                cg.apply(Resources(memory_swappiness=10))
        else:
            d = cg.dir("memory")
            assert open(f"{d}/memory.soft_limit_in_bytes").read().strip() == str(32 << 20)
            cg.apply(Resources(memory_swappiness=10, disable_oom_killer=True))
            assert open(f"{d}/memory.swappiness").read().strip() == "10"
            assert "oom_kill_disable 1" in open(f"{d}/memory.oom_control").read()
    finally:
        cg.destroy()


def test_namespaced_sysctls_are_set_and_others_refused(tmp_path):
    """linux.sysctl is written in the container's own namespaces before /proc/sys goes
    read-only; a host-wide key is refused by name before anything runs."""
    import json
    from runtime.cgroups import detect
    from runtime.image.manifest import ImageConfig
    from runtime.oci.generate import ContainerRequest, generate
    from tests.integration.runtime_helpers import busybox_rootfs
    rootfs = busybox_rootfs(tmp_path, "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start\n")
    cfg = ImageConfig("amd64", "linux", (), cmd=("sh", "/probe.sh"))
    parent = f"kpysysctl-{os.urandom(4).hex()}"  # unique: two runs side by side share the host's cgroups
    doc = generate(ContainerRequest(name="sys"), cfg, rootfs, f"{parent}/{os.getpid()}", detect())
    doc["root"]["readonly"] = True
    doc["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "net.ipv4.ip_unprivileged_port_start": "80"}
    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.split() == ["123456789", "80"], p
    assert open("/proc/sys/kernel/shmmax").read().strip() != "123456789"  # the host's is untouched
    doc["linux"]["sysctl"] = {"kernel.core_pattern": "|/tmp/x"}
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "linux.sysctl.kernel.core_pattern" in p.stderr and "namespaced" in p.stderr
    from tests.integration.leaks import cgroups_under, remove_cgroup_tree
    left = cgroups_under(parent)
    remove_cgroup_tree(parent)
    assert left == []


def test_relative_bind_sources_and_a_fake_dev_null(tmp_path):
    """A relative bind source is the bundle's (as runc); a mount over /dev/null cannot make
    masking bind something else over /proc/timer_list (CVE-2025-31133's shape): a named error."""
    import json
    from runtime.cgroups import detect
    from runtime.image.manifest import ImageConfig
    from runtime.oci.generate import ContainerRequest, generate
    from tests.integration.runtime_helpers import busybox_rootfs
    rootfs = busybox_rootfs(tmp_path, "cat /data/note; wc -c < /proc/timer_list\n")
    cfg = ImageConfig("amd64", "linux", (), cmd=("sh", "/probe.sh"))
    parent = f"kpyrel-{os.urandom(4).hex()}"  # unique: two runs side by side share the host's cgroups
    doc = generate(ContainerRequest(name="rel"), cfg, rootfs, f"{parent}/{os.getpid()}", detect())
    doc["root"]["readonly"] = True
    b = tmp_path / "b"
    (b / "shared").mkdir(parents=True)
    (b / "shared" / "note").write_text("from the bundle\n")
    doc["mounts"].append({"destination": "/data", "type": "bind", "source": "shared", "options": ["rbind", "ro"]})
    (b / "config.json").write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "kubelet_py.cli", "runtime", "run", "--bundle", str(b)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 0 and p.stdout.split() == ["from", "the", "bundle", "0"], p
    (b / "secret").write_text("host secret\n")
    doc["mounts"].append({"destination": "/dev/null", "type": "bind", "source": "secret", "options": ["bind"]})
    (b / "config.json").write_text(json.dumps(doc))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    # refused where the device node is made (mount over it: busy); masking would check it again
    assert p.returncode == 1 and "creating device /dev/null" in p.stderr, p
    assert "host secret" not in p.stdout
    from tests.integration.leaks import cgroups_under, mounts_under, remove_cgroup_tree
    left = cgroups_under(parent)
    remove_cgroup_tree(parent)
    assert left == [] and mounts_under(str(tmp_path)) == []


def test_the_init_is_in_its_cgroup_when_the_command_starts(env, tmp_path):
    """The init joins its cgroup while it makes its mounts (oci/launch.py late_join): the
    command's first look at /proc/self/cgroup already shows the container's cgroup, in every
    hierarchy (v1), or its own cgroup namespace's root (v2)."""
    from tests.conftest import host_is_cgroup2
    base = [sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
            "--cgroup-root", env["cg"], "--log-root", str(tmp_path / "logs")]
    p = subprocess.run(base + ["runtime", "run", "--image", DEFAULT_IMAGE, "--name", "first", "--", "cat",
                               "/proc/self/cgroup"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    paths = {ln.split(":", 2)[2] for ln in p.stdout.splitlines() if ln.count(":") >= 2}
    if host_is_cgroup2():
        assert paths == {"/"}, p.stdout
    else:
        (path,) = paths  # one cgroup in every hierarchy: none left at the supervisor's or ours
        assert path.startswith(f"/{env['cg']}/"), p.stdout


def test_the_container_cgroup_is_in_every_hierarchy_and_removed_from_all(env, tmp_path):
    """As runc: on v1 the container (and a process exec'd into it) is in its own cgroup in every
    hierarchy of the host, name=systemd, cpuset (whose cpus and mems are copied from the parent,
    or no process could join) and the hybrid cgroup2 included; `rm` removes them all (the env's
    leak check looks in every hierarchy)."""
    from tests.conftest import host_is_cgroup2
    from tests.integration.leaks import cgroup_hierarchies
    base = [sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
            "--cgroup-root", env["cg"], "--log-root", str(tmp_path / "logs")]
    cid = subprocess.run(base + ["runtime", "run", "-d", "--image", DEFAULT_IMAGE, "--name", "cg", "--", "sh", "-c",
                                 "trap 'exit 0' TERM; while true; do sleep 0.1; done"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    try:
        p = subprocess.run(base + ["runtime", "exec", cid, "--", "sh", "-c",
                                   "cat /proc/self/cgroup; ls /sys/fs/cgroup"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        paths = {ln.split(":", 2)[2] for ln in lines if ln.count(":") >= 2}
        n = len(cgroup_hierarchies())
        assert len([ln for ln in lines if ln.count(":") >= 2]) == n, lines
        if host_is_cgroup2():
            assert paths == {"/"}, lines  # its own cgroup namespace
        else:
            (path,) = paths
            assert path.startswith(f"/{env['cg']}/") and path.endswith(f"/{cid}"), lines
            names = {os.path.basename(point) for point, _ in cgroup_hierarchies()} - {"unified"}
            assert names <= set(lines), (names, lines)  # each v1 hierarchy in its /sys/fs/cgroup
            if os.path.isdir("/sys/fs/cgroup/cpuset"):
                with open(f"/sys/fs/cgroup/cpuset{path}/cpuset.cpus") as f:
                    assert f.read().strip()
    finally:
        p = subprocess.run(base + ["runtime", "rm", cid], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
