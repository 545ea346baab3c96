"""What a lab needs on the machine (root, iproute2, the client tools, FRR for `--mode bgp`,
the built control plane and openssl for `--apiserver kube-apiserver`); each missing piece is
named with what brings it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from metallb_lab.lab.state import LabError
from metallb_lab.routers import FRR_BFDD, FRR_BGPD, FRR_ZEBRA

PACKAGES = {
    "ip": "iproute2",
    "curl": "curl",
    "arping": "iputils-arping",
    "ndisc6": "ndisc6",
    "tcpdump": "tcpdump",
    "keepalived": "keepalived",
    "vtysh": "frr",
}
TOOLS_UP = ("curl", "arping", "ndisc6")
TOOLS_BGP = ("vtysh",)
"""Besides TOOLS_UP, for `--mode bgp` (and FRR's daemons in /usr/lib/frr)."""


def preflight(tools: Sequence[str] = TOOLS_UP) -> None:
    """Root, iproute2 and the client tools, each missing one named with its package."""
    if os.geteuid() != 0:
        raise LabError("the lab builds network namespaces and needs root: run it with sudo")
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        pkgs = " ".join(PACKAGES.get(t, t) for t in missing)
        raise LabError(
            f"missing {', '.join(missing)}: run `bash scripts/setup.sh` (or apt-get install {pkgs})"
        )


def preflight_bgp() -> None:
    """FRR's vtysh, bgpd, zebra and bfdd (not on PATH: /usr/lib/frr)."""
    preflight(TOOLS_BGP)
    missing = [d for d in (FRR_BGPD, FRR_ZEBRA, FRR_BFDD) if not os.path.exists(d)]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: run `bash scripts/setup.sh` (or apt-get install frr)"
        )


def preflight_kube_apiserver() -> None:
    """etcd, kube-apiserver and kubectl built (scripts/build-control-plane.sh), openssl for the
    test CA."""
    from metallb_lab.control_plane import ControlPlaneError, binaries

    try:
        binaries(required=True)
    except ControlPlaneError as e:
        raise LabError(f"--apiserver kube-apiserver: {e}") from None
    if shutil.which("openssl") is None:
        raise LabError("missing openssl: apt-get install openssl")
