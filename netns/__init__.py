"""Pod networking and services: what the CNI bridge plugin and kube-proxy do.

Never imports kubelet_py or runtime; takes and returns plain dataclasses.
"""
