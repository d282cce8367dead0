# shellcheck shell=bash
# Sourced by the scripts in tests/container: an isolated podman configuration (Debian's podman as
# root, cgroupfs, vfs storage, runc) under $KPY_CT_CACHE, so that /etc/containers and
# /var/lib/containers are never touched and the base tarball and image layers are kept between runs.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/lib.sh"   # TOP, ensure_apt
KPY_CT_CACHE="${KPY_CT_CACHE:-/var/cache/kubelet-py-tests}"
KPY_CT_BASE="${KPY_CT_BASE:-localhost/debian:12-kpy}"
KPY_CT_IMAGE="${KPY_CT_IMAGE:-localhost/kubelet-py-tests}"
PODMAN_DIR="$KPY_CT_CACHE/podman"

podman_env() {
  command -v podman >/dev/null || ensure_apt podman
  ensure_apt runc conmon
  local nofile nproc
  nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
  [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
  mkdir -p "$PODMAN_DIR"/{storage,run,tmp,networks}
  # no CAP_SYS_RESOURCE on these machines: podman's default rlimits (1048576) cannot be set, so
  # they are pinned under our hard limits (podman lowers its own nproc to 32768 at start-up)
  cat > "$PODMAN_DIR/containers.conf" <<CONF
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[network]
network_config_dir = "$PODMAN_DIR/networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
runtime = "runc"
tmp_dir = "$PODMAN_DIR/tmp"
CONF
  cat > "$PODMAN_DIR/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
CONF
  printf 'unqualified-search-registries = []\n' > "$PODMAN_DIR/registries.conf"
  export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$PODMAN_DIR/registries.conf"
}
podman_env
