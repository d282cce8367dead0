"""The objects that make the cluster DNS address reachable from pods (pure): the
`kube-system/kube-dns` Service with its ClusterIP (10.96.0.10, held for it by the allocator) and
an EndpointSlice pointing at where the daemon's DNS server listens on the node, so that the
Service rules (netns) DNAT 10.96.0.10:53 to it like any other Service, as kube-proxy does for
CoreDNS. No dummy interface and no address of the service CIDR on the host is needed: the server
binds a node address pods can reach (the bridge gateway, 10.244.0.1 by default).

The daemon admits them like manifests (api.admit, api.create, alloc.allocate) at start, after
making the kube-system namespace; the slice is not the EndpointSlice controller's (its manager
label is this agent's), so `endpoints.reconcile` leaves it alone."""

from __future__ import annotations

from kubelet_py.services.endpoints import LABEL_MANAGED_BY, LABEL_SERVICE_NAME

DNS_NAMESPACE, DNS_SERVICE = "kube-system", "kube-dns"
MANAGER = "kubelet-py"


def cluster_dns_objects(listen_ip: str, *, port: int = 53, dns_ip: str = "10.96.0.10",
                        node_name: str | None = None) -> list[dict]:
    """[Service, EndpointSlice] for the cluster DNS at `dns_ip`, served at `listen_ip:port`."""
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": labels},
               "spec": {"clusterIP": dns_ip, "ports": [
                   {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]}}
    endpoint = {"addresses": [listen_ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
    if node_name:
        endpoint["nodeName"] = node_name
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"{DNS_SERVICE}-node", "namespace": DNS_NAMESPACE,
                        "labels": {LABEL_SERVICE_NAME: DNS_SERVICE, LABEL_MANAGED_BY: MANAGER}},
           "addressType": "IPv4", "endpoints": [endpoint],
           "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                     {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}
    return [service, eps]
