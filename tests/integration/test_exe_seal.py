"""CVE-2019-5736 in its Python form (security.md 2.10): a container that makes the runtime's exec
run `#!/proc/self/exe` gets the runtime's interpreter as a container process, grabs
/proc/<pid>/exe and writes it once the process has exited. Every process that forks into
containers runs from a sealed memfd copy of the interpreter, so what the attacker holds is
that copy, and writing it fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time

import pytest

from runtime.linux import sealed
from runtime.image.testimages import DEFAULT_IMAGE
from tests.integration.runtime_helpers import runtime_env

pytestmark = [pytest.mark.root]

# the container's PID 1: wait for a process that is neither busybox nor itself, hold its exe, wait
# for it to exit, then look at what is held and try to append to it (only when it is not a host
# file: a regression must not damage the host's interpreter, the test reports it instead)
ATTACKER = r"""
echo "attacker $$: $(readlink /proc/$$/exe)"
while :; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/$$ ] && continue
    t=$(readlink $p/exe 2>/dev/null) || continue
    case "$t" in */busybox|"") continue;; esac
    exec 3< $p/exe || continue
    echo "grabbed $t"
    while [ -e $p/exe ]; do sleep 0.05; done
    held=$(readlink /proc/self/fd/3)
    case "$held" in
      /memfd:*) if printf x >> /proc/self/fd/3; then echo WROTE; else echo WRITE-REFUSED; fi;;
      *) echo "VULNERABLE: the host file $held";;
    esac
    exit 0
  done
  sleep 0.01
done
"""


@pytest.fixture
def env(tmp_path):
    yield from runtime_env(tmp_path)


# where the host interpreter's own files go in the container: a private dir, not on PATH, so
# nothing of the host (a distribution Python's prefix is /usr, with its /usr/bin/sh) shadows
# the image's programs
HOST_PY = "/.kpy-host-python"


def _interpreter_mounts() -> tuple[list[dict], list[str]]:
    """Enough of the host for its interpreter to run inside a busybox container (the attack needs
    the exec'd interpreter to live a moment), read-only: (mounts, env). The ELF loader and libc go
    where the interpreter's headers name them (/lib, /lib64: on no PATH); the Python prefix and a
    shared libpython's dir go under HOST_PY, found through PYTHONHOME and LD_LIBRARY_PATH, since
    the exec'd interpreter (a memfd) cannot find its prefix from where it lives."""
    # /lib and /lib64 as the host resolves them (merged /usr or not): the ELF loader and libc of
    # any architecture are found where the interpreter's headers name them
    binds = [(os.path.realpath(d), d) for d in ("/lib", "/lib64")]
    binds.append((sys.base_prefix, f"{HOST_PY}/prefix"))
    home = f"{HOST_PY}/prefix"
    if sys.base_exec_prefix != sys.base_prefix:
        binds.append((sys.base_exec_prefix, f"{HOST_PY}/exec-prefix"))
        home += f":{HOST_PY}/exec-prefix"
    env = [f"PYTHONHOME={home}"]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):  # libpython: its RPATH names a host path
        binds.append((sysconfig.get_config_var("LIBDIR"), f"{HOST_PY}/libdir"))
        env.append(f"LD_LIBRARY_PATH={HOST_PY}/libdir")
    for _src, dst in binds:
        assert dst.startswith((HOST_PY, "/lib")), dst  # never over the image's programs
    mounts = [{"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "nodev"]}
              for src, dst in binds if os.path.isdir(src)]
    return mounts, env


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"({e})"


def test_exec_of_proc_self_exe_cannot_reach_the_host_interpreter(env):
    from runtime import pod as api
    from runtime.container import Paths
    from runtime.image.store import ImageStore
    from runtime.oci.generate import ContainerRequest
    paths, store = Paths(env["root"], env["run"], env["cg"]), ImageStore(env["root"])
    pod = api.PodConfig(uid="pod-seal", name="sealpod", etc_files=False)
    log = os.path.join(str(env["tmp"]), "logs", "victim.log")
    api.run_pod_sandbox(paths, pod)
    try:
        sup = api.pod_status(paths, pod.uid).sandbox.supervisor_pid
        assert sealed.is_sealed(sup), os.readlink(f"/proc/{sup}/exe")
        assert os.readlink(f"/proc/{sup}/exe").startswith(f"/memfd:{sealed.MEMFD_NAME}")
        mounts, py_env = _interpreter_mounts()
        req = ContainerRequest(name="victim", command=["sh", "-c", ATTACKER], extra_mounts=mounts,
                               env=dict(kv.split("=", 1) for kv in py_env))
        cid = api.create_container(store, paths, pod.uid, DEFAULT_IMAGE, req, log_path=log)
        evil = os.path.join(paths.run_root, "containers", cid, "rootfs", "evil")  # the image's "binary": in the upper dir
        with open(evil, "w") as f:
            f.write("#!/proc/self/exe -cimport time; time.sleep(1.5)\n")
        os.chmod(evil, 0o755)
        api.start_container(paths, pod.uid, cid)
        try:
            code, out, err = api.exec_sync(paths, pod.uid, cid, ["/evil"])
            assert code == 0, (out, err)  # the interpreter ran inside the container, as the attack wants
            final = api.wait_container(paths, pod.uid, cid, 10)
            text = _read(log)
            assert re.search(r" attacker \d+: /\S*/busybox$", text, re.M), text  # the image's sh, not the host's
            assert "VULNERABLE" not in text and "WROTE" not in text, text
            assert f"grabbed /memfd:{sealed.MEMFD_NAME}" in text and "WRITE-REFUSED" in text, text
            assert final.exit_code == 0, final
        except BaseException:
            print(f"---- the container's log ({log}) ----\n{_read(log)}---- end of log ----")
            raise
    finally:
        api.remove_pod_sandbox(store, paths, pod.uid)


def test_foreground_run_forks_from_a_sealed_interpreter(env):
    """`runtime run` starts the container from its own process: it re-executes sealed first."""
    cmd = [sys.executable, "-m", "kubelet_py.cli", "--root", env["root"], "--run-root", env["run"],
           "--cgroup-root", env["cg"], "runtime", "run", "--image", DEFAULT_IMAGE, "--", "sleep", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sealed.is_sealed(p.pid):
            assert time.monotonic() < deadline and p.poll() is None, "the CLI never ran from a sealed copy"
            time.sleep(0.01)
        assert os.readlink(f"/proc/{p.pid}/exe").startswith(f"/memfd:{sealed.MEMFD_NAME}")
    finally:
        assert p.wait(30) == 0, p.stderr.read()
