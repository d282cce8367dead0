"""Typed errors of pod networking. Each carries the object (pod uid, link, chain, address) and the
field it concerns, so the kubelet can report it on the pod and a reader can find the culprit."""

from __future__ import annotations


class NetnsError(Exception):
    """Base of every pod-networking error; str() is one line fit for an event or a CLI."""


class ConfigError(NetnsError):
    """A NetworkConfig value that cannot work (bad CIDR, name too long, ...)."""

    def __init__(self, field: str, value: object, why: str):
        super().__init__(f"network config: {field}={value!r}: {why}")
        self.field = field
        self.value = value
        self.why = why


class PodSpecError(NetnsError):
    """Bad pod input (uid, ports, hostAliases, dnsConfig, netns path); nothing was created."""

    def __init__(self, pod_uid: str, field: str, value: object, why: str):
        super().__init__(f"pod {pod_uid}: {field}={value!r}: {why}")
        self.pod_uid = pod_uid
        self.field = field
        self.value = value
        self.why = why


class PortConflict(NetnsError):
    """A hostPort (protocol, port, hostIP) that another pod (or this pod, twice) already holds."""

    def __init__(self, pod_uid: str, field: str, mapping: str, owner: str):
        who = "another entry of the same pod" if owner == pod_uid else f"pod {owner}"
        super().__init__(f"pod {pod_uid}: {field}: hostPort {mapping} is already allocated to {who}")
        self.pod_uid = pod_uid
        self.field = field
        self.mapping = mapping
        self.owner = owner


class AddressExhausted(NetnsError):
    """No free address is left in the pod CIDR."""

    def __init__(self, pod_uid: str, cidr: str, allocated: int):
        super().__init__(f"pod {pod_uid}: no free IP address in {cidr} ({allocated} allocated)")
        self.pod_uid = pod_uid
        self.cidr = cidr
        self.allocated = allocated


class LinkError(NetnsError):
    """A netlink operation on a named link (bridge, veth, eth0 in a pod netns) failed, or the link
    exists with settings we cannot accept."""

    def __init__(self, link: str, op: str, why: str, errno: int | None = None, netns: str | None = None):
        where = f" in netns {netns}" if netns else ""
        super().__init__(f"link {link}{where}: {op}: {why}")
        self.link = link
        self.op = op
        self.why = why
        self.errno = errno
        self.netns = netns


class RuleError(NetnsError):
    """An iptables change that libiptc refused; nothing of that change was committed."""

    def __init__(self, table: str, chain: str, why: str):
        super().__init__(f"iptables {table}/{chain}: {why}")
        self.table = table
        self.chain = chain
        self.why = why


class StateError(NetnsError):
    """The on-disk state under <root> (ipam/, hostports/) cannot be read, written or locked."""

    def __init__(self, path: str, why: str):
        super().__init__(f"network state {path}: {why}")
        self.path = path
        self.why = why
