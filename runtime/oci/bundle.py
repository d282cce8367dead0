"""A bundle as the executor reads it, on the host side before any fork: config.json parsed
strictly (spec.py), the rootfs resolved, relative bind sources made the bundle's, and HOME from
the image's own /etc/passwd. Nothing here changes its arguments: new values are returned."""

from __future__ import annotations

import json
import os

from ..errors import INVALID_ARGUMENT, NOT_FOUND
from ..linux.paths import read_file_in_root
from .errors import RunError
from .spec import Spec, SpecError, parse


def read_config(bundle: str) -> dict:
    """The bundle's config.json as a document (errors name the bundle or the file)."""
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise RunError(f"bundle {bundle}: no such directory", kind=NOT_FOUND, obj=f"bundle {bundle}")
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(4 << 20))
    except FileNotFoundError:
        raise RunError(f"{bundle}: no config.json (not an OCI bundle)", kind=NOT_FOUND, obj=f"bundle {bundle}") from None
    except ValueError as e:
        raise RunError(f"{path}: not valid JSON: {e}", kind=INVALID_ARGUMENT, obj=f"bundle {bundle}",
                       field="(document)") from None
    return doc


def spec_from(doc: dict, bundle: str, host_mounts: bool = False) -> tuple[Spec, str]:
    """Parse a config.json document of `bundle` (strict: errors name the field) and resolve its
    root.path. `host_mounts`: as parse()."""
    spec = parse(doc, host_mounts)
    bundle_dir = os.path.realpath(bundle)
    spec = spec._replace(mounts=[  # a relative bind source is the bundle's, as runc reads it
        m._replace(source=os.path.join(bundle_dir, m.source))
        if (m.type == "bind" or "bind" in m.options or "rbind" in m.options) and not m.source.startswith("/") else m
        for m in spec.mounts])
    rootfs = spec.root_path if spec.root_path.startswith("/") else os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        raise SpecError("root.path", f"{rootfs} is not a directory")
    return spec, os.path.realpath(rootfs)


def load_bundle(bundle: str) -> tuple[Spec, str]:
    """The bundle's Spec and rootfs; what config.json asks for that is ignored is logged."""
    spec, rootfs = spec_from(read_config(bundle), bundle)
    if spec.warnings:
        import logging  # only then: the executor's start-up does not pay for it
        for w in spec.warnings:
            logging.getLogger(__name__).warning("%s: config.json: %s", bundle, w)
    return spec, rootfs


def env_with_home(env: list[str], uid: int, root: str) -> list[str]:
    """`env`, with HOME from the container's /etc/passwd when it has none, as runc sets it for
    the init and for every exec (read on the host side, scoped to `root`: never through NSS)."""
    if any(e.startswith("HOME=") for e in env):
        return list(env)
    home = "/"
    try:
        for line in read_file_in_root(root, "/etc/passwd").decode("utf-8", "replace").splitlines():
            f = line.split(":")
            if len(f) >= 6 and f[2] == str(uid):
                home = f[5] or "/"
                break
    except OSError:
        pass  # no readable /etc/passwd: HOME=/, as runc
    return [*env, f"HOME={home}"]
