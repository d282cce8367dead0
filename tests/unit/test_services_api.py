"""Service, EndpointSlice and Endpoints objects through load/update: defaults and the API
server's errors (paths and words), SCTP refused, LoadBalancer warned, clusterIP immutable."""

import pytest

from kubelet_py.api import ApiError, load, update
from kubelet_py.api.service_validation import patch_allocated_values, service_warnings

SVC = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
"""


def obj(text):
    return load(text, "svc.yaml")[0].obj


def errors(text):
    with pytest.raises(ApiError) as e:
        load(text, "svc.yaml")
    return [str(x) for x in e.value.errors]


def test_defaults_as_the_api_server():
    svc = obj(SVC + "  ports: [{port: 80}]\n")
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster" and "externalTrafficPolicy" not in spec
    assert svc["status"] == {"loadBalancer": {}}
    np = obj(SVC + "  type: NodePort\n  sessionAffinity: ClientIP\n  ports: [{port: 80, targetPort: http}]\n")
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    assert np["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert np["spec"]["ports"][0]["targetPort"] == "http"
    headless = obj(SVC + "  clusterIP: None\n")
    assert headless["spec"]["clusterIPs"] == ["None"]


def test_port_names_required_and_unique_when_several():
    text = SVC + "  ports:\n  - {port: 80}\n  - {port: 81, name: a}\n  - {port: 82, name: a}\n"
    assert errors(text) == ["svc.yaml: service default/web: spec.ports[0].name: Required value",
                            'svc.yaml: service default/web: spec.ports[2].name: Duplicate value: "a"']


def test_sctp_is_a_clear_error_and_bad_values_name_their_field():
    errs = errors(SVC + "  ports: [{port: 0, protocol: SCTP, targetPort: Not_A_Name}]\n")
    assert errs == [
        "svc.yaml: service default/web: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'svc.yaml: service default/web: spec.ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", '
        '"UDP" (SCTP Services are not implemented by this agent)',
        'svc.yaml: service default/web: spec.ports[0].targetPort: Invalid value: "Not_A_Name": must contain only '
        "alpha-numeric characters (a-z, 0-9), and hyphens (-)"]


def test_ports_required_unless_headless_and_type_checked():
    assert errors(SVC) == ["svc.yaml: service default/web: spec.ports: Required value"]
    assert obj(SVC + "  clusterIP: None\n")["spec"]["clusterIP"] == "None"
    errs = errors(SVC + "  type: Fancy\n  ports: [{port: 80, nodePort: 30001}]\n")
    assert 'spec.type: Unsupported value: "Fancy": supported values: "ClusterIP", "ExternalName", "LoadBalancer", ' \
           '"NodePort"' in errs[0]
    errs = errors(SVC + "  ports: [{port: 80, nodePort: 30001}]\n")
    assert errs == ["svc.yaml: service default/web: spec.ports[0].nodePort: Forbidden: may not be used when `type` is "
                    "'ClusterIP'"]
    errs = errors(SVC + "  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n")
    assert errs == ["svc.yaml: service default/web: spec.clusterIPs[0]: Invalid value: \"None\": may not be set to "
                    "'None' for NodePort services"]


def test_affinity_external_ips_and_policies():
    errs = errors(SVC + "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 90000}}\n"
                        "  externalIPs: [127.0.0.1, nope]\n  externalTrafficPolicy: Local\n"
                        "  internalTrafficPolicy: Nearby\n  ports: [{port: 80}]\n")
    assert [e.split(": ", 2)[2] for e in errs] == [
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: must be greater than 0 and less "
        "than 86400",
        'spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)',
        'spec.externalIPs[1]: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        'spec.internalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local"']
    # externalIPs make a ClusterIP Service externally accessible: externalTrafficPolicy allowed then
    ok = obj(SVC + "  externalIPs: [192.0.2.7]\n  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n")
    assert ok["spec"]["externalTrafficPolicy"] == "Local"
    errs = errors(SVC + "  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n")
    assert errs[0].endswith('spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
                            "externally-accessible services")


def test_load_balancer_accepted_with_a_warning():
    svc = obj(SVC + "  type: LoadBalancer\n  ports: [{port: 80}]\n")
    assert svc["spec"]["allocateLoadBalancerNodePorts"] is True
    [w] = service_warnings(svc)
    assert "served as a NodePort" in str(w)
    [doc] = load(SVC + "  type: LoadBalancer\n  ports: [{port: 80}]\n", "svc.yaml")
    assert [str(w) for w in doc.warnings] == [
        'svc.yaml: service default/web: spec.type: Unsupported value: "LoadBalancer": this node has no load-balancer '
        "provider: the Service is served as a NodePort (its EXTERNAL-IP stays <pending>)"]
    assert service_warnings(obj(SVC + "  ports: [{port: 80}]\n")) == []


def test_service_spec_fields_are_typed():
    errs = errors(SVC + "  ports: [{port: '80'}]\n")
    assert errs == ['svc.yaml: service default/web: spec.ports[0].port: Invalid value: "80": must be a 32-bit integer']
    docs = load(SVC + "  ports: [{port: 80}]\n  bogus: 1\n", "svc.yaml")
    assert [str(w) for w in docs[0].warnings] == ['svc.yaml: service default/web: unknown field "spec.bogus"']


def test_endpoint_slice_and_endpoints_validation():
    eps = ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1}\naddressType: IPv4\n"
           "endpoints: [{addresses: ['10.0.0.5']}, {addresses: ['fe80::1']}, {addresses: []}]\n"
           "ports: [{port: 80, protocol: SCTP}]\n")
    assert [e.split(": ", 2)[2] for e in errors(eps)] == [
        'endpoints[1].addresses[0]: Invalid value: "fe80::1": must be a valid IPv4 address',
        "endpoints[2].addresses: Required value: must contain at least 1 address",
        'ports[0].protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP" (SCTP Services are not '
        "implemented by this agent)"]
    ok = obj(eps.replace(", {addresses: ['fe80::1']}, {addresses: []}", "").replace("SCTP", "UDP"))
    assert ok["ports"] == [{"port": 80, "protocol": "UDP", "name": ""}]
    ep = ("apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\n"
          "subsets: [{addresses: [{ip: 192.0.2.1}], ports: [{port: 80}, {port: 81}]}]\n")
    assert [e.split(": ", 2)[2] for e in errors(ep)] == ["subsets[0].ports[0].name: Required value",
                                                         "subsets[0].ports[1].name: Required value"]
    assert obj(ep.replace(", {port: 81}", ""))["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


def stored(text, ip="10.96.5.5", node_port=None):
    svc = obj(text)
    svc["metadata"].update(uid="u1", resourceVersion="3", creationTimestamp="2026-01-01T00:00:00Z")
    svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"] = ip, [ip]
    if node_port:
        svc["spec"]["ports"][0]["nodePort"] = node_port
    return svc


def test_update_keeps_allocated_values_and_refuses_a_new_cluster_ip():
    text = SVC + "  type: NodePort\n  ports: [{port: 80}]\n"
    old = stored(text, node_port=30080)
    new = update(old, obj(text + "  publishNotReadyAddresses: true\n"))
    assert new["spec"]["clusterIP"] == "10.96.5.5" and new["spec"]["ports"][0]["nodePort"] == 30080
    assert new["metadata"]["resourceVersion"] == "4"
    with pytest.raises(ApiError) as e:
        update(old, obj(text.replace("type: NodePort", "type: NodePort\n  clusterIP: 10.96.9.9")))
    assert [str(x) for x in e.value.errors] == [
        'service default/web: spec.clusterIPs[0]: Invalid value: ["10.96.9.9"]: may not change once set']
    # headless stays headless; type change to ClusterIP drops nothing it did not have
    assert patch_allocated_values({"spec": {"type": "ExternalName"}}, old)["spec"] == {"type": "ExternalName"}
