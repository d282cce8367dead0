#!/bin/sh
# The image's entry point (under catatonit, PID 1): scripts/test with any pytest arguments.
set -eu
# pytest's temp dirs get a name of their own per run: the host's leak checks look for processes
# naming their own temp paths, and a container's processes are visible there (lower case: podman
# refuses an oci: path with capitals, and test_oci_cli.py pulls from one)
t="/tmp/kpy-ct-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
mkdir "$t"
# a default route, as every node has: --network=none leaves only lo, and a process's connect() to a
# Service's ClusterIP looks up a route for that address before the nat table's OUTPUT chain DNATs
# it to a pod, so with no route at all it fails at once (ENETUNREACH) and the ClusterIP never
# answers from the node (kube-proxy's iptables mode has the same need). A veth pair (this kernel
# has no dummy module) with a TEST-NET-2 address; the gateway answers nothing, nothing leaves.
if [ -z "$(ip -4 route show default)" ]; then
  ip link add ctuplink0 type veth peer name ctuplink1
  ip addr add 198.51.100.2/24 dev ctuplink0
  ip link set ctuplink1 up
  ip link set ctuplink0 up
  ip route add default via 198.51.100.1 dev ctuplink0
fi
PYTEST_DEBUG_TEMPROOT="$t" exec scripts/test "$@"
