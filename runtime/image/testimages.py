"""Built-in images made offline from Debian's busybox-static (`/bin/busybox`).

`busybox_image()` is the one-layer default image of the demo; `layered_image()` adds layers that
exercise every whiteout and replacement rule of the image spec. Both are reproducible."""

from __future__ import annotations

import functools
import os
import subprocess

from ..errors import FAILED_PRECONDITION
from .build import BuiltImage, Layer, TarEntry, build_image, layer_from_tar, make_tar
from .errors import ImageError

BUSYBOX = os.environ.get("KPY_BUSYBOX", "/bin/busybox")
DEFAULT_IMAGE = "kubelet-py.local/busybox:1.35"
LAYERED_IMAGE = "kubelet-py.local/busybox-layered:1.35"

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" \
         b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n"


def _busybox() -> tuple[bytes, list[str]]:
    try:
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        out = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ImageError(f"built-in image: cannot use {BUSYBOX} ({e}); install Debian's busybox-static",
                         kind=FAILED_PRECONDITION, obj=BUSYBOX) from None
    return data, sorted(set(out.split()) - {"bin/busybox"})


def base_entries() -> list[TarEntry]:
    data, applets = _busybox()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "www", "opt", "opt/old", "opt/old/sub",
            "data", "home", "proc", "sys", "dev", "var", "run"}
    dirs |= {os.path.dirname(a) for a in applets} - {""}
    entries = [TarEntry(d + "/", "dir") for d in sorted(dirs)]
    entries += [TarEntry("tmp/", "dir", mode=0o1777), TarEntry("root/", "dir", mode=0o700),
                TarEntry("home/app/", "dir", uid=1000, gid=1000)]
    entries.append(TarEntry("bin/busybox", data=data, mode=0o755))
    entries += [TarEntry(a, "symlink", linkname="/bin/busybox") for a in applets]
    entries += [
        TarEntry("etc/passwd", data=PASSWD), TarEntry("etc/group", data=GROUP),
        TarEntry("etc/hosts"), TarEntry("etc/resolv.conf"), TarEntry("etc/hostname"),
        TarEntry("www/index.html", data=b"kubelet-py busybox\n"),
        TarEntry("etc/layer1-only.txt", data=b"layer 1\n"),
        TarEntry("opt/old/a.txt", data=b"a\n"), TarEntry("opt/old/sub/c.txt", data=b"c\n"),
        TarEntry("data/file-becomes-symlink", data=b"a plain file in layer 1\n"),
        TarEntry("data/symlink-becomes-dir", "symlink", linkname="../opt"),
    ]
    return entries


def layer2_entries() -> list[TarEntry]:
    return [
        TarEntry("etc/layer2.txt", data=b"layer 2\n"),
        TarEntry("etc/.wh.layer1-only.txt"),  # delete a file
        TarEntry("opt/old/", "dir"),
        TarEntry("opt/old/.wh..wh..opq"),  # hide a.txt and sub/ of layer 1
        TarEntry("opt/old/b.txt", data=b"b\n"),
        TarEntry("data/file-becomes-symlink", "symlink", linkname="../etc/hostname"),
        TarEntry("data/symlink-becomes-dir/", "dir"),
        TarEntry("data/symlink-becomes-dir/inside.txt", data=b"inside\n"),
        TarEntry("data/hardlink-src.txt", data=b"linked\n", mode=0o640),
        TarEntry("data/hardlink.txt", "hardlink", linkname="data/hardlink-src.txt"),
        TarEntry("tmp/layer2-in-tmp.txt", data=b"no tmp/ entry in this layer\n"),  # implicit parent
        TarEntry("bin/suid-true", data=b"#!/bin/sh\n", mode=0o4755),
    ]


def layer3_entries() -> list[TarEntry]:
    return [
        TarEntry("etc/.wh.layer2.txt"),  # delete what the layer below added
        TarEntry("etc/layer3.txt", data=b"layer 3\n", xattrs={"user.kpy": "three"}),
    ]


@functools.lru_cache(maxsize=None)
def _layer(which: str, compression: str | None) -> Layer:
    entries = {"base": base_entries, "l2": layer2_entries, "l3": layer3_entries}[which]()
    return layer_from_tar(make_tar(entries), compression)


def busybox_image(compression: str | None = "gzip", **config) -> BuiltImage:
    config.setdefault("cmd", ["sh"])
    return build_image([_layer("base", compression)], **config)


def layered_image(compression: str | None = "mixed", **config) -> BuiltImage:
    """Three layers; with "mixed": gzip, zstd, uncompressed."""
    comps = ("gzip", "zstd", None) if compression == "mixed" else (compression,) * 3
    config.setdefault("cmd", ["sh"])
    return build_image([_layer("base", comps[0]), _layer("l2", comps[1]), _layer("l3", comps[2])], **config)
