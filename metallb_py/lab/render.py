"""Text views of a lab, pure: the topology picture and the Service table of `lab status`."""

from __future__ import annotations

from collections.abc import Sequence

from metallb_py.lab.lab import LabStatus, NodeStatus, ServiceStatus
from metallb_py.lab.layout import BRIDGE, CLIENT_IPV4, CLIENT_IPV6, NODE_IFACE

COLUMN = 17


def picture(status: LabStatus) -> str:
    """The client on top, the bridge, one column per node with its speaker and link state."""
    nodes = status.nodes
    width = max(COLUMN * len(nodes), 40)
    lines = [
        f"client  {status.layout.client_netns}   {BRIDGE} {CLIENT_IPV4}/24  {CLIENT_IPV6}/64",
        "   |",
        "   " + f"{' ' + BRIDGE + ' '}".center(width - 3, "="),
    ]
    lines.append("".join("  |".ljust(COLUMN) for _ in nodes))
    lines.append("".join(f"  {NODE_IFACE} {_link(n)}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"[{n.name}]".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"{n.ipv4}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"{n.ipv6}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"speaker {'up' if n.speaker else 'DOWN'}".ljust(COLUMN) for n in nodes))
    lines.append("")
    lines.append(f"API server {status.api_url}  (host loopback; portal at 127.0.0.1:6443 in nodes)")
    lines.append(
        f"processes: {status.processes_running} running of {status.processes_total} started"
    )
    return "\n".join(line.rstrip() for line in lines)


def _link(node: NodeStatus) -> str:
    return "up" if node.link else "DOWN"


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def services_table(services: Sequence[ServiceStatus]) -> str:
    rows = [["SERVICE", "POLICY", "IP", "ANNOUNCED BY", "ARP/NDP FROM", "REACHABLE", "ANSWERED BY"]]
    for s in services:
        rows.append(
            [
                f"default/{s.name}",
                s.policy,
                ",".join(s.ips) or "(pending)",
                ",".join(s.announcers) or "-",
                ",".join(s.layer2) or "-",
                "yes" if s.http else "NO",
                s.http or "-",
            ]
        )
    return table(rows)


def kubectl_hint(api_url: str, kubeconfig: str) -> str:
    return (
        f"kubectl --server {api_url} get svc,endpointslices,nodes -A\n"
        f"export KUBECONFIG={kubeconfig}"
    )
