"""The proving ground beside metallb-py, shipped separately from the product.

`metallb-py lab` (the local lab: namespaces, processes, demo), the Kubernetes API server the
tests and the lab run against (`apiserver`), network namespaces (`netns`), the portal that lets
node namespaces reach the host's loopback (`portal`), drivers for FRR, BIRD and GoBGP
(`routers`), harness programs that run one product part alone (`harness`), and what every long
program here shares: stopping cleanly on SIGTERM/SIGINT (`signals`) and progress lines
(`progress`). The product package `metallb_py` never imports this one;
`pip install 'metallb-py[lab]'` installs it.
"""

# A Kubernetes object as decoded JSON: the product's one alias serves the lab too.
from metallb_py.k8s.objects import Obj

__version__ = "0.1.0"

__all__ = ["Obj"]
