"""Services on one node, the kubelet-side pure parts: ClusterIP/nodePort allocation (alloc),
the EndpointSlice and Endpoints controllers (endpoints), service environment variables
(envvars). The iptables rules are netns's; cluster DNS is kubelet_py.dns."""
