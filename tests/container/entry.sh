#!/bin/sh
# The image's entry point (under catatonit, PID 1): scripts/test with any pytest arguments.
set -eu
# pytest's temp dirs get a name of their own per run: the host's leak checks look for processes
# naming their own temp paths, and a container's processes are visible there (lower case: podman
# refuses an oci: path with capitals, and test_oci_cli.py pulls from one)
t="/tmp/kpy-ct-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
mkdir "$t"
PYTEST_DEBUG_TEMPROOT="$t" exec scripts/test "$@"
