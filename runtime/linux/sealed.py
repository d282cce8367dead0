"""A sealed in-memory copy of the interpreter for every process that forks into containers
(security.md 2.10, CVE-2019-5736).

A process forked from the runtime is the host's python binary until its final execve. If the
image makes that execve run a `#!/proc/self/exe` script, the container runs the interpreter the
kernel finds behind /proc/self/exe; a second container process can then open
/proc/<pid>/exe and, once it exits, write the host binary. Processes started from a sealed
memfd copy (write, grow, shrink and seal-changes forbidden) have that memfd behind
/proc/self/exe instead, so there is nothing on the host to write. Supervisors are started
from one; a command line that forks containers itself re-executes once through one.

The copy is of the executable only (17 KiB for a shared-libpython build, some MiB for a static
one); libraries stay mapped from the host, where a container cannot reach them."""

from __future__ import annotations

import fcntl
import os
import sys

MEMFD_NAME = "kpy-python"
F_SEAL_EXEC = 0x20  # Linux 6.3: the exec bits can no longer change
BASE_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MFD_EXEC = getattr(os, "MFD_EXEC", 0x10)  # Linux 6.3+


def sealed_copy() -> int:
    """A close-on-exec fd of a sealed memfd holding this process's own executable."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(MEMFD_NAME, flags | MFD_EXEC)  # say it is executable (6.3+ warns otherwise)
    except OSError:
        fd = os.memfd_create(MEMFD_NAME, flags)  # an older kernel rejects the unknown flag
    try:
        src = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            done = 0
            while done < size:
                n = os.sendfile(fd, src, done, size - done)
                if n == 0:
                    raise OSError(f"/proc/self/exe: short copy ({done} of {size} bytes)")
                done += n
        finally:
            os.close(src)
        os.fchmod(fd, 0o511)
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, BASE_SEALS | F_SEAL_EXEC)
        except OSError:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, BASE_SEALS)  # before 6.3: no F_SEAL_EXEC
    except BaseException:
        os.close(fd)
        raise
    return fd


def exe_seals(pid: int | str = "self") -> int:
    """The seals of the file behind /proc/<pid>/exe (0: an ordinary, writable file)."""
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return 0  # not a memfd: ordinary files have no seals
    finally:
        os.close(fd)


def is_sealed(pid: int | str = "self") -> bool:
    return exe_seals(pid) & BASE_SEALS == BASE_SEALS


def child_python_path() -> str:
    """PYTHONPATH for an interpreter the runtime starts (the zygote, a helper): the directory the
    running `runtime` package was loaded from, then this process's sys.path (where the
    dependencies are), so that the child imports exactly what this process imports however
    kubelet-py is installed (a path entry, an editable install's import hook, a wheel)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.pathsep.join(dict.fromkeys([top] + [p for p in sys.path if p]))


def interpreter_argv(args: list[str]) -> list[str]:
    """argv for running the interpreter from the copy: argv[0] stays the interpreter's path,
    which is where Python looks for its venv and stdlib (not /proc/self/exe)."""
    return [sys.executable, *args]


def reexec_sealed() -> None:
    """Re-execute this command from a sealed copy unless it already runs from one. Costs one
    interpreter start; for commands that fork into containers in-process."""
    if is_sealed():
        return
    fd = sealed_copy()
    os.execve(fd, interpreter_argv(sys.orig_argv[1:]), os.environ)
