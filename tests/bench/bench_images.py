#!/usr/bin/env python3
"""Image benchmarks, run by hand (never part of CI's pass/fail); prints ratios against peers.

    .venv/bin/python tests/bench/bench_images.py [--runs N] [--skip-pull]

1. Unpack of a gzip layer of >= 100 MB of mixed files (/usr/include + /usr/sbin + /usr/bin/[a-c]*):
   kubelet-py's secure unpack vs `tar -xzf` into a fresh dir (the floor) and `umoci unpack`.
   Target: <= 1.3x tar.
2. A second image sharing the base layer: how many layers it unpacks, and the time.
3. Pull (incl. unpack) of the small busybox image from a local docker-registry: `kubelet-py image
   pull` vs `ctr images pull` (our own containerd) and `podman pull` (isolated store), each a fresh
   process after removing the image; and of the 100 MB image vs `skopeo copy` + `tar -xzf`.
   Target: faster than both ctr and podman.
Peers missing on the machine are reported and left out (apt-get install podman containerd umoci skopeo).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)

from runtime.image.archive import import_path  # noqa: E402
from runtime.image.build import Layer, build_image, write_oci_layout  # noqa: E402
from runtime.image.store import ImageStore  # noqa: E402
from runtime.image.testimages import busybox_image, layered_image  # noqa: E402

KPY = [os.path.join(os.path.dirname(sys.executable), "kubelet-py")]  # what users run


def timed(fn, runs: int, prepare=None) -> list[float]:
    out = []
    for _ in range(runs):
        if prepare:
            prepare()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def row(label: str, xs: list[float], floor: float | None = None, floor_name: str = "") -> None:
    ratio = f"  {med(xs) / floor:5.2f}x {floor_name}" if floor else ""
    print(f"  {label:<52} median {med(xs) * 1000:9.1f} ms  (min {min(xs) * 1000:.1f}, n={len(xs)}){ratio}")


def sh(*cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode:
        sys.exit(f"bench_images: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return r


def make_usr_layer(work: str) -> tuple[str, Layer]:
    blob = os.path.join(work, "usr.tar.gz")
    paths = ["usr/include", "usr/sbin"] + sorted(p[1:] for p in glob.glob("/usr/bin/[a-c]*"))
    sh("tar", "--numeric-owner", "-czf", blob, "-C", "/", *paths)
    h = hashlib.sha256()
    with open(blob, "rb") as f:
        while c := f.read(1 << 20):
            h.update(c)
    digest = "sha256:" + h.hexdigest()
    p = subprocess.Popen(["sh", "-c", f"gzip -dc {blob} | sha256sum"], stdout=subprocess.PIPE, text=True)
    diff_id = "sha256:" + p.communicate()[0].split()[0]
    raw = int(subprocess.run(["sh", "-c", f"gzip -dc {blob} | wc -c"], capture_output=True, text=True).stdout)
    print(f"layer: {os.path.getsize(blob) / 1e6:.1f} MB gzip, {raw / 1e6:.1f} MB of tar "
          f"({int(subprocess.run(['sh', '-c', f'tar -tzf {blob} | wc -l'], capture_output=True, text=True).stdout)} entries)")
    return blob, Layer(None, digest, os.path.getsize(blob), diff_id, "application/vnd.oci.image.layer.v1.tar+gzip",
                       path=blob)


def bench_unpack(work: str, runs: int) -> None:
    print("\n== 1. unpack of one gzip layer")
    blob, layer = make_usr_layer(work)
    dest = os.path.join(work, "dest")

    def fresh():
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        subprocess.run(["sync"])

    store_root = os.path.join(work, "kstore")

    def ours():
        store = ImageStore(store_root)
        os.link(blob, store.blob_path(layer.digest))
        store.unpack(layer.digest, layer.diff_id, [])

    def fresh_store():
        shutil.rmtree(store_root, ignore_errors=True)
        subprocess.run(["sync"])

    # alternate tar and ours so that drift on this noisy VM hits both alike
    tar_t, our_t = [], []
    for _ in range(runs):
        tar_t += timed(lambda: sh("tar", "-xzf", blob, "-C", dest), 1, fresh)
        our_t += timed(ours, 1, fresh_store)
    row("tar -xzf (floor)", tar_t)
    row("kubelet-py unpack (in-process)", our_t, med(tar_t), "tar")
    if shutil.which("umoci"):
        layout = os.path.join(work, "layout")
        write_oci_layout(layout, {"usr": build_image([layer])})
        bundle = os.path.join(work, "bundle")
        um = timed(lambda: sh("umoci", "unpack", "--image", f"{layout}:usr", bundle), runs,
                   lambda: shutil.rmtree(bundle, ignore_errors=True))
        row("umoci unpack", um, med(tar_t), "tar")
        print(f"  kubelet-py / umoci: {med(our_t) / med(um):.2f}x")
    else:
        print("  umoci: not installed")
    shutil.rmtree(dest, ignore_errors=True)


def bench_shared_base(work: str, runs: int) -> None:
    print("\n== 2. a second image sharing the base layer")
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    write_oci_layout(a, {"kubelet-py.local/a:1": busybox_image()})
    write_oci_layout(b, {"kubelet-py.local/b:1": layered_image("gzip")})
    root = os.path.join(work, "shared")
    firsts, seconds, counts = [], [], []
    for _ in range(runs):
        shutil.rmtree(root, ignore_errors=True)
        store = ImageStore(root)
        firsts += timed(lambda: import_path(store, b), 1)
        shutil.rmtree(root)
        store = ImageStore(root)
        import_path(store, a)
        before = len(os.listdir(store.snapshots))
        seconds += timed(lambda: import_path(store, b), 1)
        counts.append(len(os.listdir(store.snapshots)) - before)
    row("3-layer image into an empty store", firsts)
    row(f"same image, base already there ({counts[0]} of 3 layers unpacked)", seconds, med(firsts), "of empty")


def bench_pull(work: str, runs: int) -> None:
    print("\n== 3. pull from a local docker-registry (incl. unpack)")
    sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
    try:
        from registry_fixture import Registry  # noqa: E402
    except ImportError as e:
        print(f"  registry fixture unavailable: {e}")
        return
    reg = Registry(os.path.join(work, "registry"))
    reg.start()
    try:
        layout = os.path.join(work, "pull-layout")
        write_oci_layout(layout, {"busybox": busybox_image()})
        ref = f"{reg.host}/kpy/busybox:1.35"
        sh("skopeo", "--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:busybox", f"docker://{ref}")
        regfile = os.path.join(work, "registries.yaml")
        with open(regfile, "w") as f:
            f.write(f'mirrors:\n  "{reg.host}":\n    endpoint: ["http://{reg.host}"]\n')
        root = os.path.join(work, "pullroot")
        kpy = KPY + ["--root", root, "--registries", regfile]

        def kpy_clean():
            subprocess.run(kpy + ["image", "rm", ref], capture_output=True)
            subprocess.run(kpy + ["image", "prune"], capture_output=True, check=True)
        # interleaved, one run of each in turn, so that this VM's drift hits all alike
        peers = {"kubelet-py image pull": (lambda: sh(*kpy, "image", "pull", ref), kpy_clean)}
        ctrd = _Containerd(work) if shutil.which("containerd") and shutil.which("ctr") else None
        if ctrd:
            ctr = ctrd.ctr
            peers["ctr images pull --plain-http"] = (
                lambda: sh(*ctr, "images", "pull", "--plain-http", ref),
                lambda: subprocess.run(ctr + ["images", "rm", "--sync", ref], capture_output=True))
        else:
            print("  containerd/ctr: not installed")
        if shutil.which("podman"):
            env = dict(os.environ, PEERS_WORK=os.path.join(work, "peers"), REGISTRY_ADDR=reg.host)
            pre = f"source {_peers_common()}; podman_env; "
            peers["podman pull"] = (
                lambda: sh("bash", "-c", pre + f"podman pull -q {ref}", env=env),
                lambda: subprocess.run(["bash", "-c", pre + f"podman rmi -f {ref}"], env=env, capture_output=True))
        else:
            print("  podman: not installed")
        times = {k: [] for k in peers}
        try:
            for _ in range(runs):
                for k, (fn, prep) in peers.items():
                    times[k] += timed(fn, 1, prep)
        finally:
            if ctrd:
                ctrd.stop()
        ours = times["kubelet-py image pull"]
        for k, xs in times.items():
            row(f"{k} (1 MB image)", xs)
        for k, xs in times.items():
            if k != "kubelet-py image pull":
                print(f"  kubelet-py / {k.split()[0]}: {med(ours) / med(xs):.2f}x")
        # the 100 MB image
        blob, layer = make_usr_layer(work)
        big_layout = os.path.join(work, "big-layout")
        write_oci_layout(big_layout, {"usr": build_image([layer])})
        big = f"{reg.host}/kpy/usr:1"
        sh("skopeo", "--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{big_layout}:usr", f"docker://{big}")
        ours_big = timed(lambda: sh(*kpy, "image", "pull", big), max(1, runs // 2),
                         lambda: (subprocess.run(kpy + ["image", "rm", big], capture_output=True),
                                  subprocess.run(kpy + ["image", "prune"], capture_output=True)))
        dest = os.path.join(work, "skopeo-dest")

        def skopeo_tar():
            os.makedirs(dest)
            sh("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{big}", f"oci:{dest}/layout:usr")
            blobs = os.path.join(dest, "layout", "blobs", "sha256", layer.digest.split(":")[1])
            os.makedirs(os.path.join(dest, "rootfs"))
            sh("tar", "-xzf", blobs, "-C", os.path.join(dest, "rootfs"))
        peer = timed(skopeo_tar, max(1, runs // 2), lambda: shutil.rmtree(dest, ignore_errors=True))
        row("skopeo copy + tar -xzf (100 MB image)", peer)
        row("kubelet-py image pull (100 MB image)", ours_big, med(peer), "skopeo+tar")
    finally:
        reg.stop()


class _Containerd:
    """Our own containerd: private root/state/socket, CRI off (as ../shared/peers/bench.sh)."""

    def __init__(self, work: str):
        d = os.path.join(work, "containerd")
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "containerd.sock")
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(f'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\nroot = "{d}/root"\n'
                    f'state = "{d}/state"\n[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
        self.proc = subprocess.Popen(["containerd", "--config", os.path.join(d, "config.toml")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if subprocess.run(["ctr", "-a", sock, "version"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        self.ctr = ["ctr", "-a", sock, "-n", "kpy-bench"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def _peers_common() -> str:
    for p in (os.path.join(os.path.dirname(TOP), "shared", "peers", "common.sh"), "/work/shared/peers/common.sh"):
        if os.path.exists(p):
            return p
    sys.exit("bench_images: ../shared/peers/common.sh not found (podman's isolated store)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-pull", action="store_true")
    ap.add_argument("--only", choices=["unpack", "shared", "pull"])
    ap.add_argument("--fs", choices=["tmpfs", "disk"], default="tmpfs",
                    help="where the unpack runs: tmpfs isolates our CPU cost from this VM's noisy disk")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_images: run as root")
    print(f"kubelet-py image benchmarks, {time.strftime('%Y-%m-%d')}, {os.uname().nodename}, "
          f"{os.cpu_count()} CPUs, kernel {os.uname().release}")
    with tempfile.TemporaryDirectory(prefix="kpy-bench-", dir="/var/tmp") as work:
        if a.only in (None, "unpack"):
            if a.fs == "tmpfs":
                fs = os.path.join(work, "tmpfs")
                os.makedirs(fs)
                sh("mount", "-t", "tmpfs", "-o", "size=6g", "kpy-bench", fs)
                try:
                    print(f"(unpack on tmpfs; --fs disk for {work})")
                    bench_unpack(fs, a.runs)
                finally:
                    sh("umount", fs)
            else:
                bench_unpack(work, a.runs)
        if a.only in (None, "shared"):
            bench_shared_base(work, a.runs)
        if a.only in (None, "pull") and not a.skip_pull:
            bench_pull(work, a.runs)


if __name__ == "__main__":
    main()
