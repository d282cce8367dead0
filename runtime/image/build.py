"""Building OCI images offline (pure: bytes in, bytes out; writers at the bottom touch files).

Used by `image import-rootfs`, by the built-in demo image, and by tests and benchmarks to make
images with exactly the layers they need. Output is reproducible (sorted JSON, mtime 0 gzip)."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

from .digest import digest_bytes
from .manifest import (DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
                       Platform, host_platform)

LAYER_MEDIA = {
    None: "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class TarEntry:
    """One tar member to write. kind: file, dir, symlink, hardlink, char, block, fifo."""
    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: int = 0
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict = field(default_factory=dict)


_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def make_tar(entries: list[TarEntry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _KINDS[e.kind]
            ti.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
            ti.uid, ti.gid, ti.mtime = e.uid, e.gid, e.mtime
            ti.uname = ti.gname = ""
            ti.linkname = e.linkname
            ti.devmajor, ti.devminor = e.devmajor, e.devminor
            if e.xattrs:
                ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def compress(data: bytes, compression: str | None) -> bytes:
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(f"unknown compression {compression!r}")


def _json(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Layer:
    blob: bytes | None  # None when the blob lives in a file (`path`)
    digest: str
    size: int
    diff_id: str
    media_type: str
    path: str | None = None

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def layer_from_tar(tar: bytes, compression: str | None = "gzip") -> Layer:
    blob = compress(tar, compression)
    return Layer(blob, digest_bytes(blob), len(blob), digest_bytes(tar), LAYER_MEDIA[compression])


@dataclass
class BuiltImage:
    """An image as blobs in memory: manifest + config + layers."""
    layers: list[Layer]
    config: bytes
    manifest: bytes
    platform: Platform

    @property
    def manifest_digest(self) -> str:
        return digest_bytes(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        out = {digest_bytes(self.config): self.config, self.manifest_digest: self.manifest}
        for ly in self.layers:
            if ly.blob is not None:
                out[ly.digest] = ly.blob
        return out

    def descriptor(self) -> dict:
        p = {"os": self.platform.os, "architecture": self.platform.architecture}
        if self.platform.variant:
            p["variant"] = self.platform.variant
        return {"mediaType": OCI_MANIFEST, "digest": self.manifest_digest, "size": len(self.manifest),
                "platform": p}


def build_image(layers: list[Layer], *, entrypoint=None, cmd=None, env=None, working_dir="",
                user="", labels=None, exposed_ports=None, stop_signal="", platform: Platform | None = None,
                created: str = "1970-01-01T00:00:00Z", docker: bool = False) -> BuiltImage:
    platform = platform or host_platform()
    cfg: dict = {"Env": list(env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])}
    if entrypoint:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd:
        cfg["Cmd"] = list(cmd)
    if working_dir:
        cfg["WorkingDir"] = working_dir
    if user:
        cfg["User"] = user
    if labels:
        cfg["Labels"] = dict(labels)
    if stop_signal:
        cfg["StopSignal"] = stop_signal
    if exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in exposed_ports}
    config = {"architecture": platform.architecture, "os": platform.os, "created": created,
              "config": cfg, "rootfs": {"type": "layers", "diff_ids": [ly.diff_id for ly in layers]},
              "history": [{"created": created, "created_by": "kubelet-py build"} for _ in layers]}
    if platform.variant:
        config["variant"] = platform.variant
    cbytes = _json(config)
    if docker:
        layer_descs = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar" if ly.media_type.endswith(".tar")
                        else "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ly.digest, "size": ly.size}
                       for ly in layers]
        manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG, "digest": digest_bytes(cbytes), "size": len(cbytes)},
                    "layers": layer_descs}
    else:
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": digest_bytes(cbytes), "size": len(cbytes)},
                    "layers": [ly.descriptor() for ly in layers]}
    return BuiltImage(layers, cbytes, _json(manifest), platform)


def make_index(images: list[BuiltImage]) -> bytes:
    return _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [im.descriptor() for im in images]})


# ---- writers (touch files) -------------------------------------------------------------------

def _layout_files(refs: dict[str, BuiltImage | bytes], extra: dict[str, bytes]) -> dict[str, bytes | str]:
    """Relative path -> bytes (or a file path to copy) of an OCI image layout holding `refs`
    (ref name -> image, or -> index bytes whose images are in `extra` blobs)."""
    files: dict[str, bytes | str] = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"})}
    manifests = []
    blobs: dict[str, bytes | str] = {}
    for ref, im in refs.items():
        if isinstance(im, BuiltImage):
            for d, b in im.blobs().items():
                blobs[d] = b
            for ly in im.layers:
                if ly.blob is None:
                    blobs[ly.digest] = ly.path
            desc = {"mediaType": OCI_MANIFEST, "digest": im.manifest_digest, "size": len(im.manifest)}
        else:
            blobs[digest_bytes(im)] = im
            desc = {"mediaType": OCI_INDEX, "digest": digest_bytes(im), "size": len(im)}
        desc["annotations"] = {REF_NAME: ref}
        manifests.append(desc)
    blobs.update(extra)
    for d, b in blobs.items():
        files["blobs/" + d.replace(":", "/")] = b
    files["index.json"] = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    return files


def write_oci_layout(path: str, refs: dict, extra: dict | None = None) -> None:
    for rel, data in _layout_files(refs, extra or {}).items():
        dest = os.path.join(path, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if isinstance(data, str):
            with open(data, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        else:
            with open(dest, "wb") as out:
                out.write(data)


def _write_tar(path: str, files: dict[str, bytes | str]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for rel in sorted(files):
            data = files[rel]
            if isinstance(data, str):
                ti = tf.gettarinfo(data, arcname=rel)
                ti.uid = ti.gid = ti.mtime = 0
                ti.uname = ti.gname = ""
                with open(data, "rb") as f:
                    tf.addfile(ti, f)
            else:
                ti = tarfile.TarInfo(rel)
                ti.size = len(data)
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(data))


def write_oci_archive(path: str, refs: dict, extra: dict | None = None) -> None:
    _write_tar(path, _layout_files(refs, extra or {}))


def write_docker_archive(path: str, images: dict[str, BuiltImage]) -> None:
    """`docker save` format: manifest.json, <config>.json, <id>/layer.tar (layers uncompressed
    or as they are: docker 25+ also writes compressed blobs)."""
    files: dict[str, bytes | str] = {}
    entries = []
    for tag, im in images.items():
        cfg_name = digest_bytes(im.config).split(":")[1] + ".json"
        files[cfg_name] = im.config
        layer_paths = []
        for ly in im.layers:
            lp = f"{ly.diff_id.split(':')[1]}/layer.tar"
            files[lp] = ly.blob if ly.blob is not None else ly.path
            layer_paths.append(lp)
        entries.append({"Config": cfg_name, "RepoTags": [tag] if tag else None, "Layers": layer_paths})
    files["manifest.json"] = json.dumps(entries).encode()
    _write_tar(path, files)
