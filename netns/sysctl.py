"""Edge: the few /proc/sys knobs pod networking needs, written only when they differ."""

from __future__ import annotations

import os

from .errors import LinkError


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/") if "/" not in key else key


def get(key: str) -> str | None:
    try:
        with open(_path(key)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def ensure(key: str, value: str, link: str = "sysctl") -> bool:
    """Set `key` to `value`; True if it was changed."""
    if get(key) == value:
        return False
    try:
        with open(_path(key), "w") as f:
            f.write(value)
    except OSError as e:
        raise LinkError(link, f"sysctl {key}={value}", e.strerror or str(e), e.errno) from None
    return True


def ip_forward() -> bool:
    return ensure("net.ipv4.ip_forward", "1")


def route_localnet(ifname: str) -> bool:
    # interface names may contain '.', so build the path by hand
    return ensure(os.path.join("/proc/sys/net/ipv4/conf", ifname, "route_localnet"), "1", ifname)


def bridge_nf_call_iptables() -> bool:
    """br_netfilter's knob, when the module is there: bridged pod-to-pod traffic must pass
    iptables for Service DNAT replies and hairpin. Absent without br_netfilter: nothing to do."""
    if get("net.bridge.bridge-nf-call-iptables") is None:
        return False
    return ensure("net.bridge.bridge-nf-call-iptables", "1")
