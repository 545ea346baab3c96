"""Text views of a lab, pure: the topology picture and the tables of `lab status` (Services;
in bgp mode also the router's sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from metallb_lab.lab.layout import BRIDGE, CLIENT_IPV4, CLIENT_IPV6, NODE_ASN, NODE_IFACE
from metallb_lab.lab.status import LabStatus, NodeStatus, RouterStatus, ServiceStatus

COLUMN = 17


def picture(status: LabStatus) -> str:
    """The client on top (in bgp mode also the router), the bridge, one column per node with
    its speaker and link state (and its BGP session as the router sees it)."""
    nodes = status.nodes
    width = max(COLUMN * len(nodes), 40)
    lines = [
        f"client  {status.layout.client_netns}   {BRIDGE} {CLIENT_IPV4}/24  {CLIENT_IPV6}/64",
    ]
    if status.router is not None:
        lines.append(router_line(status.router))
    lines += [
        "   |",
        "   " + f"{' ' + BRIDGE + ' '}".center(width - 3, "="),
    ]
    lines.append("".join("  |".ljust(COLUMN) for _ in nodes))
    lines.append("".join(f"  {NODE_IFACE} {_link(n)}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"[{n.name}]".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"{n.ipv4}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"{n.ipv6}".ljust(COLUMN) for n in nodes))
    lines.append("".join(f"speaker {'up' if n.speaker else 'DOWN'}".ljust(COLUMN) for n in nodes))
    if status.router is not None:
        lines.append("".join(f"AS {NODE_ASN}".ljust(COLUMN) for _ in nodes))
        lines.append("".join(f"bgp {n.bgp or '-'}".ljust(COLUMN) for n in nodes))
    lines.append("")
    lines.append(
        f"API server {status.apiserver} {status.api_url}  "
        "(host loopback; portal at 127.0.0.1:6443 in nodes)"
    )
    lines.append(
        f"processes: {status.processes_running} running of {status.processes_total} started"
    )
    return "\n".join(line.rstrip() for line in lines)


def router_line(router: RouterStatus) -> str:
    daemons = ", ".join(
        f"{name} {'up' if running else 'DOWN'}"
        for name, running in (("bgpd", router.bgpd), ("zebra", router.zebra))
    )
    line = f"router  FRR AS {router.asn} ({daemons}), learned routes -> client's kernel table"
    return line + (f"\n        FRR unreadable: {router.error}" if router.error else "")


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
    if any(s.mode == "bgp" for s in services):
        return bgp_services_table(services)
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


def bgp_services_table(services: Sequence[ServiceStatus]) -> str:
    """Per Service: the nodes behind the router's installed route (ECMP when several) next to
    the nodes whose speaker announces it, and who answered `curl` through that route."""
    rows = [
        ["SERVICE", "POLICY", "IP", "ANNOUNCED BY", "FRR ROUTE VIA", "REACHABLE", "ANSWERED BY"]
    ]
    for s in services:
        hops = ",".join(s.next_hops) or "-"
        if len(s.next_hops) > 1:
            hops += " (ECMP)"
        rows.append(
            [
                f"default/{s.name}",
                s.policy,
                ",".join(s.ips) or "(pending)",
                ",".join(s.announcers) or "-",
                hops,
                "yes" if s.http else "NO",
                s.http or "-",
            ]
        )
    return table(rows)


def sessions_table(nodes: Sequence[NodeStatus]) -> str:
    """bgp mode: each node's session, as FRR and as the node's speaker see it."""
    rows = [["NODE", "PEER ADDRESS", "FRR STATE", "PREFIXES v4/v6", "SPEAKER SESSION UP"]]
    for n in nodes:
        rows.append(
            [
                n.name,
                n.ipv4,
                n.bgp or "-",
                f"{n.prefixes.get('ipv4', 0)}/{n.prefixes.get('ipv6', 0)}" if n.bgp else "-",
                "-" if n.bgp_up is None else ("yes" if n.bgp_up else "no"),
            ]
        )
    return table(rows)


def tables(status: LabStatus) -> str:
    """What `lab status` prints under the picture."""
    out = services_table(status.services)
    if status.router is not None:
        out += "\n\n" + sessions_table(status.nodes)
    return out


def overview(status: LabStatus) -> str:
    """The picture and the tables, as `lab up`, `lab status` and the demo show them."""
    return picture(status) + "\n\n" + tables(status)


def vtysh_hint(client_netns: str, workdir: str | Path) -> str:
    """How to ask the lab's FRR yourself (docs/lab.md lists more commands)."""
    return (
        f"ip netns exec {client_netns} vtysh --vty_socket {workdir} "
        "-c 'show bgp summary' -c 'show ip route bgp'"
    )


def kubectl_hint(api_url: str, kubeconfig: str, apiserver: str = "embedded") -> str:
    """kube-apiserver needs the kubeconfig's credentials; the embedded server only its URL."""
    where = f"--server {api_url}" if apiserver == "embedded" else f"--kubeconfig {kubeconfig}"
    return f"kubectl {where} get svc,endpointslices,nodes -A\nexport KUBECONFIG={kubeconfig}"
