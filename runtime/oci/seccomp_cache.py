"""The container's seccomp program, compiled in the parent before the fork (host side), and the
OCI command line's on-disk cache of compiled programs: podman's profile takes libseccomp ~60 ms
to compile, loading a cached one ~0.1 ms."""

from __future__ import annotations

import json
import os
import stat

from .spec import Spec

_LIBSECCOMP = ("/lib/x86_64-linux-gnu/libseccomp.so.2", "/usr/lib/x86_64-linux-gnu/libseccomp.so.2",
               "/lib/aarch64-linux-gnu/libseccomp.so.2", "/usr/lib64/libseccomp.so.2")


def private(st: os.stat_result, path: str) -> None:
    """Refuse what another user could have written: not ours, group/other-writable, a link."""
    if st.st_uid != os.geteuid() or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: not ours alone")


def compile_seccomp(spec: Spec, cache_dir: str | None = None):
    """The spec's filter, compiled in the parent. With `cache_dir` (the OCI CLI: a fresh process
    per call) compiled programs are kept on disk, keyed by the profile, the kernel and the
    libseccomp file. The directory must be as private as the runtime's state (the CLI's --root,
    mode 0700). A linux.seccomp.Filter, or None."""
    if spec.seccomp is None:
        return None
    from ..linux import seccomp as kseccomp  # only for a filter (it is the Filter's module)
    if cache_dir is None:
        return kseccomp.compile_filter(spec.seccomp)
    import zlib
    lib = next((os.path.realpath(p) for p in _LIBSECCOMP if os.path.exists(p)), "")
    # the file is named by a checksum and holds the whole key, compared exactly on load (hashlib
    # would cost ~5 ms of start-up: OpenSSL)
    key = json.dumps([spec.seccomp, os.uname().release, lib, kseccomp.COMPILER_VERSION], sort_keys=True)
    path = os.path.join(cache_dir, f"seccomp-{zlib.crc32(key.encode()):08x}-{len(key)}.json")
    try:
        # the program decides what the container may do: only a file of ours, in a dir only we
        # can write, is trusted (anything else is compiled afresh)
        private(os.lstat(cache_dir), cache_dir)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd) as f:
            private(os.fstat(fd), path)
            d = json.load(f)
        if d["key"] != key:
            raise ValueError("another profile")
        return kseccomp.Filter(bytes.fromhex(d["program"]), d["flags"], d["skipped"], d["arches"])
    except (OSError, ValueError, KeyError, TypeError, kseccomp.SeccompError):
        pass  # not cached (or not trusted): compiled below
    flt = kseccomp.compile_filter(spec.seccomp)
    tmp = f"{path}.{os.getpid()}"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump({"key": key, "program": flt.program.hex(), "flags": flt.flags, "skipped": flt.skipped_syscalls,
                       "arches": flt.skipped_arches}, f)
        os.rename(tmp, path)
    except OSError as e:  # a cache only: the start goes on
        import logging  # only here: the executor's start-up does not pay for it
        log = logging.getLogger(__name__)
        log.warning("seccomp cache %s: not written: %s", cache_dir, e)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # never made
        except OSError as e2:
            log.warning("seccomp cache: %s left behind: %s", tmp, e2)
    return flt
