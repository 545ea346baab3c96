"""Programs that run one part of the product alone, without Kubernetes, for tests, benchmarks
and debugging: `python -m metallb_lab.harness.layer2`, `.membership`, `.manifests`."""
