"""Install and operate: the manifest set, Prometheus alerts, addon value readers (Helm, Konvoy,
Kontena) and the conversion between the v0.12 ConfigMap and MetalLB v0.13's custom resources.

Everything here is pure (values in, Kubernetes objects or YAML text out); the CLI commands
`render` and `config convert` only read files and write the results.
"""
