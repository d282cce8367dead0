"""Typed errors of pod networking. Each carries a `kind`, the object it concerns (`obj`: "pod <uid>",
"link <name>", "iptables nat/<chain>", "network state <path>") and the `field` (a pod spec or
NetworkConfig field path, or the PodNetwork field that is wrong; None when no field applies), so
the kubelet can report it on the pod and a reader can find the culprit.

The kinds are gRPC's canonical status codes, the same strings as `runtime.errors` (the two
packages never import each other; the strings are the contract, checked by a unit test)."""

from __future__ import annotations

from typing import Iterable

NOT_FOUND = "NOT_FOUND"  # the pod has no network here
ALREADY_EXISTS = "ALREADY_EXISTS"  # a hostPort another pod holds
FAILED_PRECONDITION = "FAILED_PRECONDITION"  # the pod's network is in the wrong state for the call
INVALID_ARGUMENT = "INVALID_ARGUMENT"  # a field of the request or of the NetworkConfig is wrong
UNAVAILABLE = "UNAVAILABLE"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # no address left in the pod CIDR
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
INTERNAL = "INTERNAL"  # the kernel refused, or the state on disk is unusable

KINDS = (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, UNAVAILABLE, RESOURCE_EXHAUSTED,
         DEADLINE_EXCEEDED, INTERNAL)


class NetnsError(Exception):
    """Base of every pod-networking error; str() is one line fit for an event or a CLI.
    `kind`: one of KINDS (a subclass sets its usual one; a raise may override it)."""

    kind = INTERNAL

    def __init__(self, *args, kind: str | None = None, obj: str | None = None, field: str | None = None):
        super().__init__(*args)
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"unknown error kind {kind!r}")
            self.kind = kind
        self.obj = obj
        self.field = field


class ConfigError(NetnsError):
    """A NetworkConfig value that cannot work (bad CIDR, name too long, ...)."""

    kind = INVALID_ARGUMENT

    def __init__(self, field: str, value: object, why: str):
        super().__init__(f"network config: {field}={value!r}: {why}", obj="network config", field=field)
        self.value = value
        self.why = why


class PodSpecError(NetnsError):
    """Bad pod input (uid, ports, hostAliases, dnsConfig, netns path); nothing was created."""

    kind = INVALID_ARGUMENT

    def __init__(self, pod_uid: str, field: str, value: object, why: str):
        super().__init__(f"pod {pod_uid}: {field}={value!r}: {why}", obj=f"pod {pod_uid}", field=field)
        self.pod_uid = pod_uid
        self.value = value
        self.why = why


class PortConflict(NetnsError):
    """A hostPort (protocol, port, hostIP) that another pod (or this pod, twice) already holds."""

    kind = ALREADY_EXISTS

    def __init__(self, pod_uid: str, field: str, mapping: str, owner: str):
        who = "another entry of the same pod" if owner == pod_uid else f"pod {owner}"
        super().__init__(f"pod {pod_uid}: {field}: hostPort {mapping} is already allocated to {who}",
                         obj=f"pod {pod_uid}", field=field)
        self.pod_uid = pod_uid
        self.mapping = mapping
        self.owner = owner


class AddressExhausted(NetnsError):
    """No free address is left in the pod CIDR."""

    kind = RESOURCE_EXHAUSTED

    def __init__(self, pod_uid: str, cidr: str, allocated: int):
        super().__init__(f"pod {pod_uid}: no free IP address in {cidr} ({allocated} allocated)", obj=f"pod {pod_uid}")
        self.pod_uid = pod_uid
        self.cidr = cidr
        self.allocated = allocated


class LinkError(NetnsError):
    """A netlink operation on a named link (bridge, veth, eth0 in a pod netns) failed, or the link
    exists with settings we cannot accept."""

    def __init__(self, link: str, op: str, why: str, errno: int | None = None, netns: str | None = None):
        where = f" in netns {netns}" if netns else ""
        super().__init__(f"link {link}{where}: {op}: {why}", obj=f"link {link}{where}")
        self.link = link
        self.op = op
        self.why = why
        self.errno = errno
        self.netns = netns


class RuleError(NetnsError):
    """An iptables change that libiptc refused; nothing of that change was committed."""

    def __init__(self, table: str, chain: str, why: str):
        super().__init__(f"iptables {table}/{chain}: {why}", obj=f"iptables {table}/{chain}")
        self.table = table
        self.chain = chain
        self.why = why


class StateError(NetnsError):
    """The on-disk state under <root> (ipam/, hostports/, podnet/) cannot be read, written or locked."""

    def __init__(self, path: str, why: str):
        super().__init__(f"network state {path}: {why}", obj=f"network state {path}")
        self.path = path
        self.why = why


class NetworkNotFound(NetnsError):
    """The pod has no network here: no record of a setup, no address, no hostPort claim, no veth."""

    kind = NOT_FOUND

    def __init__(self, pod_uid: str):
        super().__init__(f"pod {pod_uid}: no pod network (never set up, or torn down)", obj=f"pod {pod_uid}")
        self.pod_uid = pod_uid


class NetworkInconsistent(NetnsError):
    """Part of the pod's network is there and part is not (a setup or teardown was interrupted,
    or something outside removed a link or a rule). `problems` lists (field, what is wrong), field
    being the PodNetwork field concerned ("ip", "host_veth", "ports", ...) or "bridge"/"rules"/
    "record"; the first one is the error's `field`. setup_pod_network repairs it,
    teardown_pod_network removes it."""

    kind = FAILED_PRECONDITION

    def __init__(self, pod_uid: str, problems: Iterable[tuple[str, str]]):
        self.problems = tuple(problems)
        text = "; ".join(what for _, what in self.problems) or "inconsistent"
        super().__init__(f"pod {pod_uid}: pod network is inconsistent: {text}", obj=f"pod {pod_uid}",
                         field=self.problems[0][0] if self.problems else None)
        self.pod_uid = pod_uid


class ServiceSpecError(NetnsError):
    """A Service port or endpoint the service proxy cannot program (bad address, port out of
    range, SCTP, ...); nothing was applied. `obj` is "service <ns>/<name>", `field` the
    ServicePort/Endpoint field path (e.g. "ports[http].node_port", "endpoints[2].ip")."""

    kind = INVALID_ARGUMENT

    def __init__(self, service: str, field: str, value: object, why: str):
        super().__init__(f"service {service}: {field}={value!r}: {why}", obj=f"service {service}", field=field)
        self.service = service
        self.value = value
        self.why = why


class ServiceSyncError(RuleError):
    """A service rule sync the kernel (or iptables-legacy-restore) refused. The table named was
    not changed (each table is one commit); the proxy does a full sync on the next call, so the
    caller retries the same `sync`. `chain` is the chain of the failing line when known."""

    kind = UNAVAILABLE

    def __init__(self, table: str, chain: str, why: str):
        super().__init__(table, chain, why)
