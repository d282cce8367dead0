#!/usr/bin/env bash
# CI's check of tests/Containerfile (scripts/test runs it after the host suite): build the base
# offline (make-base.sh, cached), build the image with Debian's podman (root, cgroupfs, vfs
# storage: podman-env.sh), then run a representative subset of the suite inside a privileged
# container with the README's flags (scripts/test runs it once the host suite has ended).
# Usage: tests/container/check.sh                 the subset (1.5-3 minutes here)
#        tests/container/check.sh all             the whole suite (scripts/test in the container)
#        tests/container/check.sh PYTEST_ARGS...  these tests instead
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/podman-env.sh"
t0=$SECONDS
"$HERE/make-base.sh" "$KPY_CT_BASE"
mkdir -p "$KPY_CT_CACHE/apt-archives"
echo "check: podman build -f tests/Containerfile ($((SECONDS - t0)) s so far)" >&2
# --network=host: the RUN steps reach the apt mirror and PyPI without a podman network (no
# bridge or iptables rule of podman's on this host); apt's downloads are kept between runs
# PIP_CERT: the host's CA bundle, so that pip trusts what the host trusts (this project's
# machines reach PyPI through a TLS-intercepting proxy whose CA only the host's bundle has)
podman build --quiet --force-rm --network=host --build-arg BASE="$KPY_CT_BASE" \
  --build-arg PIP_CERT=/run/kpy-host-ca.crt -v /etc/ssl/certs/ca-certificates.crt:/run/kpy-host-ca.crt:ro \
  -v "$KPY_CT_CACHE/apt-archives:/var/cache/apt/archives" \
  -t "$KPY_CT_IMAGE" -f "$TOP/tests/Containerfile" "$TOP" >"$KPY_CT_CACHE/build.log" 2>&1 \
  || { tail -n 80 "$KPY_CT_CACHE/build.log" >&2; echo "check: podman build failed (log: $KPY_CT_CACHE/build.log)" >&2; exit 1; }
podman image prune -f >/dev/null   # the previous build's layers, now untagged (vfs: full copies)
echo "check: image built ($((SECONDS - t0)) s so far)" >&2
if [ $# -eq 0 ]; then
  # a few unit tests; the runtime starting containers (cgroups, overlay, seccomp); pod networks
  # (bridge, veth, iptables NAT and hostPorts, traffic); one pod through a real daemon
  set -- -q -p no:cacheprovider \
    tests/unit/test_api_quantity.py tests/unit/test_netns_plan.py tests/unit/test_policy.py \
    "tests/integration/test_runtime.py::test_memory_limit_oom_kill" \
    "tests/integration/test_runtime.py::test_cgroup_files_hold_computed_values" \
    "tests/integration/test_runtime.py::test_pid1_hostname_and_isolation" \
    tests/integration/test_netns_traffic.py \
    "tests/e2e/test_pods.py::test_a_web_pod_runs_ready_serves_and_leaves_nothing"
elif [ "$1" = all ]; then
  set --
fi
rc=0
podman run --rm --privileged --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup --network=none \
  -v /lib/modules:/lib/modules:ro \
  "$KPY_CT_IMAGE" "$@" || rc=$?
echo "check: done, rc=$rc, $((SECONDS - t0)) s in all" >&2
exit $rc
