"""The kernel test bed: run a pytest group inside a VM that virtme-ng boots from Debian's kernel
over this machine's own root filesystem (read-only, writes in an overlay), and bring back the
exit code, the pytest summary and a junit file through a writable shared dir.

    python -m tests.vm                      # the VM group: tests marked cgroup2 or cgroups
    python -m tests.vm -- -k oom -x         # pytest arguments for the VM (default: -m cgroup2 tests)
    python -m tests.vm --shell              # an interactive shell in the VM
    python -m tests.vm --print-cmd          # show the vng command instead of running it

Used by scripts/test after the host suite (so by CI), and by hand. A VM that cannot boot is a
failure with the reason, never a skip. KVM does not work on this project's machines, so the VM
runs under TCG (about 20x slower for CPU-bound Python): keep VM groups small.

Designed for more than one VM: `VMSpec` carries the qemu options (a later issue joins two VMs
with `-netdev socket` links on loopback for a two-node lab)."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PYTEST = ["-m", "cgroup2 or cgroups", "tests/integration"]


class VMError(Exception):
    """The bed itself is broken (missing kernel, qemu or vng; the VM did not run the command)."""


def find_kernel() -> str:
    """Debian's own kernel (linux-image-amd64): virtme-ng needs a distribution kernel with
    virtio/9p built in or as modules; the host's cloud kernel may have neither."""
    env = os.environ.get("KPY_VM_KERNEL")
    if env:
        if not os.path.isfile(env):
            raise VMError(f"KPY_VM_KERNEL={env}: no such file")
        return env
    kernels = sorted(glob.glob("/boot/vmlinuz-*"), key=lambda p: _version_key(p.split("vmlinuz-", 1)[1]))
    if not kernels:
        raise VMError("no kernel in /boot: install Debian's linux-image-amd64 (scripts/test does)")
    return kernels[-1]


def _version_key(v: str) -> list:
    out = []
    for part in v.replace("-", ".").split("."):
        out.append((0, int(part)) if part.isdigit() else (1, part))
    return out


def find_tool(name: str, package: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    path = here if os.access(here, os.X_OK) else shutil.which(name)
    if not path:
        raise VMError(f"{name} not found: install {package} (scripts/test does)")
    return path


@dataclasses.dataclass
class VMSpec:
    memory: str = "2G"
    cpus: int = 2
    qemu_opts: list[str] = dataclasses.field(default_factory=list)  # e.g. -netdev socket,... for a lab
    rwdirs: list[str] = dataclasses.field(default_factory=list)


def vng_env() -> dict:
    """vng runs its sibling virtme-run from PATH: put the venv's bin dir first."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def vng_command(spec: VMSpec, kernel: str, exec_cmd: str | None) -> list[str]:
    find_tool("qemu-system-x86_64", "qemu-system-x86")
    cmd = [find_tool("vng", "virtme-ng (pip)"), "--run", kernel, "--disable-kvm", "--force-9p",
           "--memory", spec.memory, "--cpus", str(spec.cpus)]
    for d in spec.rwdirs:
        cmd += ["--rwdir", d]
    if spec.qemu_opts:
        cmd += ["--qemu-opts=" + " ".join(spec.qemu_opts)]
    if exec_cmd is not None:
        cmd += ["--exec", exec_cmd]
    return cmd


def _prune_old_results(keep: int = 5) -> None:
    """Results dirs of earlier runs (junit, pytest.out) are kept for a look; only the newest few."""
    old = sorted(glob.glob("/var/tmp/kpy-vm-*"), key=os.path.getmtime)
    for d in old[:-keep] if len(old) > keep else []:
        shutil.rmtree(d, ignore_errors=True)


def run_pytest_in_vm(pytest_args: list[str], spec: VMSpec | None = None, timeout: float = 1800) -> int:
    """Boot, run pytest inside with the project's interpreter, print what came back; pytest's rc."""
    spec = spec or VMSpec()
    kernel = find_kernel()
    _prune_old_results()
    results = tempfile.mkdtemp(prefix="kpy-vm-", dir="/var/tmp")
    spec.rwdirs.append(results)
    # TMPDIR on a fresh tmpfs: the VM's root overlay refuses the 0:0 whiteout nodes and trusted
    # xattrs that snapshots hold. It is mounted below the results dir, never over /tmp, which
    # may hold the checkout itself.
    tmp = os.path.join(results, "tmp")
    os.mkdir(tmp)
    inner = (f"echo $(date +%s.%N) > {results}/t_exec; mount -t tmpfs -o size=1500m kpy-vm-tmp {tmp}; "
             f"export TMPDIR={tmp}; cd {shlex.quote(TOP)} && "
             f"KPY_IN_VM=1 KPY_STRICT=1 PYTHONDONTWRITEBYTECODE=1 {shlex.quote(sys.executable)} -m pytest "
             f"-p no:cacheprovider --junitxml={results}/junit.xml {' '.join(map(shlex.quote, pytest_args))} "
             f"> {results}/pytest.out 2>&1; echo $? > {results}/rc")
    cmd = vng_command(spec, kernel, inner)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=TOP, stdin=subprocess.DEVNULL,
                           env=vng_env())
    except subprocess.TimeoutExpired:
        raise VMError(f"the VM did not finish within {timeout:.0f}s") from None
    wall = time.time() - t0
    out_path, rc_path = os.path.join(results, "pytest.out"), os.path.join(results, "rc")
    if not os.path.exists(rc_path) or not os.path.exists(out_path):
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-30:])
        raise VMError(f"the VM did not run the tests (vng exit {p.returncode}); its output ends:\n{tail}")
    with open(out_path) as f:
        sys.stdout.write(f.read())
    try:
        with open(os.path.join(results, "t_exec")) as f:
            boot = float(f.read()) - t0
        print(f"[tests.vm] kernel {os.path.basename(kernel)}: start-up (boot to first command) {boot:.1f} s, "
              f"whole run {wall:.1f} s; junit: {results}/junit.xml")
    except (OSError, ValueError):
        print(f"[tests.vm] whole run {wall:.1f} s; junit: {results}/junit.xml")
    with open(rc_path) as f:
        return int(f.read().strip() or 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.vm", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shell", action="store_true", help="an interactive shell in the VM")
    ap.add_argument("--print-cmd", action="store_true")
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest inside the VM")
    a = ap.parse_args(argv)
    spec = VMSpec(a.memory, a.cpus)
    try:
        if a.shell or a.print_cmd:
            cmd = vng_command(spec, find_kernel(), None if a.shell else "true")
            if a.print_cmd:
                print(shlex.join(cmd))
                return 0
            return subprocess.call(cmd, cwd=TOP, env=vng_env())
        return run_pytest_in_vm(a.pytest_args or DEFAULT_PYTEST, spec)
    except VMError as e:
        print(f"tests.vm: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
