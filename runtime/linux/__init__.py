"""The kernel edge of the runtime: syscalls through ctypes (Python 3.11 has no os.unshare/setns)."""
