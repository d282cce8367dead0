#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2015  # `A && B || fail`: fail when either is false
# Provision one node of the Vagrant lab (vagrant/Vagrantfile runs it on each VM), or any plain
# Debian 12 / Ubuntu 24.04 root shell: install kubelet-py from this checkout as the README does
# (Debian packages, a venv: scripts/lib.sh), import the built-in busybox image, write
# /etc/kubelet-py/config.yaml (this node's pod CIDR, the cluster's, the sample manifest dir),
# route the other nodes' pod CIDRs through their node IPs (kept by a oneshot systemd unit), and
# install and start the kubelet-py service.
#
# Usage: provision.sh [--check] [--skip-install] --node-name NAME --node-ip IP --pod-cidr CIDR
#                     --cluster-cidr CIDR [--peer NODE_IP=POD_CIDR]...
#   --check         check the prerequisites and the arguments, print every step, change nothing
#   --skip-install  kubelet-py is already installed in $KPY_VENV (CI's VMs share the host's venv)
# KPY_VENV: the venv (default /opt/kubelet-py/venv). Without systemd (a container, CI's VMs) the
# unit and the config are written, not started: the unit's ExecStart runs the daemon by hand.
set -euo pipefail
export KPY_VENV="${KPY_VENV:-/opt/kubelet-py/venv}"
# shellcheck source=../scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"   # TOP, VENV, ensure_apt, ensure_venv
HERE="$TOP/vagrant"
ETC=/etc/kubelet-py
PACKAGES=(busybox-static iproute2 iptables python3 python3-venv)

check=0 skip_install=0 name="" ip="" pod_cidr="" cluster_cidr="" peers=()
usage() { sed -n '10,13p' "$0" | sed 's/^# //' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --skip-install) skip_install=1 ;;
    --node-name) name="${2:?}"; shift ;;
    --node-ip) ip="${2:?}"; shift ;;
    --pod-cidr) pod_cidr="${2:?}"; shift ;;
    --cluster-cidr) cluster_cidr="${2:?}"; shift ;;
    --peer) peers+=("${2:?}"); shift ;;
    *) echo "provision.sh: unknown argument: $1" >&2; usage ;;
  esac
  shift
done
[ -n "$name" ] && [ -n "$ip" ] && [ -n "$pod_cidr" ] && [ -n "$cluster_cidr" ] || usage

failed=0
say() { echo "provision.sh: $*" >&2; }
fail() { say "FAIL: $*"; failed=1; }
# A step: printed, and run unless --check.
run() { echo "+ $*"; [ $check -eq 1 ] || "$@"; }
# A file: its path and content printed, and written (0644, parents made) unless --check.
put() {
  local path="$1" content="$2"
  printf '+ write %s:\n%s\n' "$path" "$content" | sed '2,$s/^/    /'
  [ $check -eq 1 ] || { mkdir -p "$(dirname "$path")"; printf '%s\n' "$content" > "$path.tmp"; mv "$path.tmp" "$path"; }
}

# ---- prerequisites ------------------------------------------------------------------------------
# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) say "host: ${PRETTY_NAME:-$ID}" ;;
  *) fail "not Debian or Ubuntu (/etc/os-release ID=${ID:-none}): the steps use apt" ;;
esac
[ "$(id -u)" -eq 0 ] || fail "not root: provisioning installs packages and writes /etc"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || fail "apt-get/dpkg-query missing"
[ -f "$TOP/pyproject.toml" ] && grep -q '^name = "kubelet-py"' "$TOP/pyproject.toml" \
  || fail "$TOP is not a kubelet-py checkout (pyproject.toml)"
[ -f "$HERE/manifests/hello.yaml" ] || fail "the sample manifest $HERE/manifests/hello.yaml is missing"
systemd=0
[ -d /run/systemd/system ] && systemd=1
[ $systemd -eq 1 ] || say "no systemd here: the unit and config are written, the daemon is not started"
# The addresses, with Python's ipaddress (python3 is one of the packages; Debian and Ubuntu have it).
if command -v python3 >/dev/null; then
  python3 - "$ip" "$pod_cidr" "$cluster_cidr" "${peers[@]}" <<'EOF' || failed=1
import ipaddress, sys
ip, pod, cluster, peers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def err(msg):
    print(f"provision.sh: FAIL: {msg}", file=sys.stderr); sys.exit(1)
try:
    node = ipaddress.IPv4Address(ip)
    nets = {ip: ipaddress.IPv4Network(pod), "cluster": ipaddress.IPv4Network(cluster)}
except ValueError as e:
    err(f"{e} (an IPv4 address, networks as 10.244.1.0/24)")
for p in peers:
    peer_ip, _, peer_cidr = p.partition("=")
    try:
        addr, net = ipaddress.IPv4Address(peer_ip), ipaddress.IPv4Network(peer_cidr)
    except ValueError as e:
        err(f"--peer {p}: {e} (NODE_IP=POD_CIDR)")
    if str(addr) in nets:
        err(f"--peer {p}: node IP {addr} given twice")
    nets[str(addr)] = net
cluster = nets.pop("cluster")
for who, net in nets.items():
    if not net.subnet_of(cluster):
        err(f"pod CIDR {net} of {who} is outside the cluster CIDR {cluster}")
    for other, net2 in nets.items():
        if other != who and net.overlaps(net2):
            err(f"pod CIDRs {net} ({who}) and {net2} ({other}) overlap")
EOF
elif [ $check -eq 1 ]; then
  say "python3 is not installed yet: the addresses are checked once it is"
fi
if [ $check -eq 0 ] && ! ip -4 -o addr show | grep -q " inet $ip/"; then
  fail "no interface has $ip: the node's private address (the Vagrantfile's private network)"
fi
if [ $failed -ne 0 ]; then
  say "prerequisites not met: nothing was changed"
  exit 1
fi

# ---- the steps ----------------------------------------------------------------------------------
if [ $check -eq 1 ]; then
  absent=$(for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$p"; done)
  echo "+ ensure_apt ${PACKAGES[*]}   # missing here: ${absent:-none}"
else
  ensure_apt "${PACKAGES[@]}"
fi
if [ $skip_install -eq 1 ]; then
  [ -x "$KPY_VENV/bin/kubelet-py" ] || { say "FAIL: --skip-install: no $KPY_VENV/bin/kubelet-py"; exit 1; }
  echo "+ # --skip-install: kubelet-py of $KPY_VENV as it is"
else
  echo "+ ensure_venv   # python3 -m venv $KPY_VENV; pip install -e $TOP"
  [ $check -eq 1 ] || ensure_venv ""  # no extras
fi
run ln -sf "$KPY_VENV/bin/kubelet-py" /usr/local/bin/kubelet-py
run "$KPY_VENV/bin/kubelet-py" image builtin
put "$ETC/config.yaml" "# written by vagrant/provision.sh: serve's flags as keys (README, Running as a service)
nodeName: $name
podCidr: $pod_cidr
clusterCidr: $cluster_cidr
manifests: $ETC/manifests"
run install -D -m 0644 "$HERE/manifests/hello.yaml" "$ETC/manifests/hello.yaml"
# Routes to the other nodes' pods: no NAT on the way (netns masquerades only outside --cluster-cidr).
route_cmds=()
for p in "${peers[@]}"; do
  route_cmds+=("/sbin/ip route replace ${p#*=} via ${p%%=*}")
  run ip route replace "${p#*=}" via "${p%%=*}"
done
if [ $systemd -eq 1 ] && [ ${#peers[@]} -gt 0 ]; then
  unit="[Unit]
Description=kubelet-py lab: routes to the other nodes' pod CIDRs (vagrant/provision.sh)
After=network-online.target
Wants=network-online.target
Before=kubelet-py.service

[Service]
Type=oneshot
RemainAfterExit=yes"
  for c in "${route_cmds[@]}"; do unit+=$'\n'"ExecStart=$c"; done
  unit+=$'\n\n[Install]\nWantedBy=multi-user.target'
  put /etc/systemd/system/kubelet-py-lab-routes.service "$unit"
  run systemctl daemon-reload
  run systemctl enable kubelet-py-lab-routes.service
fi
# The unit (Type=notify, KillMode=process, ...): with systemd, enabled and started (restarted when
# it ran already, so a new config is read); without, only written.
run "$KPY_VENV/bin/kubelet-py" install-service
if [ $systemd -eq 1 ]; then
  run systemctl restart kubelet-py
fi
if [ $check -eq 1 ]; then say "checked: nothing was changed"; else say "done"; fi
