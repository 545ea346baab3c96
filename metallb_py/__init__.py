"""metallb-py: MetalLB v0.12 re-implemented in Python."""

__version__ = "0.1.0"
