"""`metallb-py lab`: a whole MetalLB cluster in network namespaces on one machine.

A client/router namespace with a bridge, N node namespaces on it, an API server on the host's
loopback (the embedded test server, or etcd + kube-apiserver), the controller, one speaker per
node and a tiny HTTP backend per node, all detached so the lab outlives the command that built
it. `layout` and `objects` are the pure plan; `lifecycle` builds and removes it (with
`topology`, `processes`, `commands`, `credentials`, `state`); `running` drives a lab that is up;
`probe` measures failover; docs/lab.md, "Code".
"""
