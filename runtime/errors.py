"""The base of the runtime's errors (cgroups, spec, executor, users, rootfs): the CLI prints any
of them as one line. Kept import-free so that `kubelet-py image ...` does not load the runtime."""


class RuntimeFailure(Exception):
    pass
