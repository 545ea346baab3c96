"""`metallb-py lab`: the local lab. `lab apiserver` runs the test Kubernetes API server in the
foreground, so kubectl, the controller and the speaker can be pointed at it."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lab() -> None:
    """A local MetalLB lab without a real cluster."""


@lab.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free port).",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a kubeconfig for this server here.",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NAME",
    help="Create this namespace at start (repeatable), e.g. metallb-system.",
)
@click.option(
    "--history-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Changes kept per resource for watches; older versions get 410 Gone.",
)
@click.option(
    "--service-cidr",
    "service_cidrs",
    multiple=True,
    metavar="CIDR",
    help="Cluster IP range (repeatable; the first is the primary family; two make the cluster "
    "dual-stack). Default: 10.96.0.0/16 and fd00:10:96::/112.",
)
@click.option(
    "--node-port-range",
    default="30000-32767",
    show_default=True,
    metavar="LOW-HIGH",
    help="Node ports for NodePort/LoadBalancer Services (a large lab needs a larger range, or "
    "Services with allocateLoadBalancerNodePorts: false).",
)
@click.option(
    "--bookmark-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.05),
    help="Seconds between BOOKMARK events on watches that allow them.",
)
def apiserver(
    *,
    host: str,
    port: int,
    kubeconfig_out: Path | None,
    namespaces: tuple[str, ...],
    history_size: int,
    service_cidrs: tuple[str, ...],
    node_port_range: str,
    bookmark_interval: float,
) -> None:
    """Serve the test Kubernetes API until SIGINT/SIGTERM.

    Prints one JSON line with `url` (and `kubeconfig`) once it accepts connections. Fault
    switches: POST /_fault/{drop-watches,expire-history,outage,fail,delay,conflict,reset}.
    """
    import ipaddress

    from metallb_py.testing.apiserver import ApiServer, ClusterConfig

    try:
        low_text, _, high_text = node_port_range.partition("-")
        ports = (int(low_text), int(high_text))
        for cidr in service_cidrs:
            ipaddress.ip_network(cidr)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise click.BadParameter(f"bad node port range {node_port_range}")
    cluster = ClusterConfig(node_port_range=ports)
    if service_cidrs:
        cluster.service_cidrs = service_cidrs
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    api = ApiServer(
        host,
        port,
        namespaces=namespaces,
        cluster=cluster,
        history_size=history_size,
        bookmark_interval=bookmark_interval,
    )
    try:
        api.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e}") from e
    try:
        ready: dict[str, str] = {"url": api.url}
        if kubeconfig_out is not None:
            ready["kubeconfig"] = str(api.kubeconfig_path(kubeconfig_out))
        click.echo(json.dumps(ready), nl=True)
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()
