"""`metallb-py doctor`: check a cluster for the usual reasons MetalLB does not work.

Exit codes: 0 no error (silent on a healthy cluster; warning and info lines may be printed),
1 at least one error, 2 the cluster could not be reached, the kubeconfig not loaded, or a bad
option.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click


def _client(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    api_client.configuration.retries = 1
    return api_client


def _selector(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A Kubernetes label selector (`node-role.kubernetes.io/gpu`, `zone in (a,b)`)."""
    if value is None:
        return None
    from metallb_py.k8s.selectors import SelectorError, parse_label_selector

    if not value.strip():
        raise click.BadParameter("an empty selector would match every node")
    try:
        return parse_label_selector(value)
    except SelectorError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Default: $KUBECONFIG, ~/.kube/config or in-cluster.",
)
@click.option("--context", help="kubeconfig context to use.")
@click.option("-n", "--namespace", default="metallb-system", show_default=True)
@click.option(
    "--ignore-node",
    "ignore_nodes",
    multiple=True,
    metavar="NAME",
    help="A node that runs no speaker on purpose (repeatable).",
)
@click.option(
    "--ignore-node-selector",
    callback=_selector,
    metavar="SELECTOR",
    help="Nodes that run no speaker on purpose, as a label selector (kubectl -l syntax).",
)
def doctor(
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    ignore_nodes: tuple[str, ...],
    ignore_node_selector: Any,
) -> None:
    """Check the cluster: the config ConfigMap and whether it is in force, the controller
    Deployment, kube-proxy IPVS without strictARP, pools overlapping the Service or Pod networks
    or holding node addresses, the memberlist Secret, and Ready nodes without a running speaker.

    Prints one line per finding, `check: problem. Fix: how`; lines marked `(warning)` or
    `(info)` do not change the exit code. Prints nothing when all is well. Nodes the speaker
    DaemonSet's nodeSelector, node affinity or taints keep it off are one info line, not errors.
    """
    from metallb_py.doctor import IgnoredNodes, diagnose, exit_code, gather

    try:
        api_client = _client(kubeconfig, context)
    except Exception as exc:  # the kubernetes loader raises several unrelated types
        click.echo(f"doctor: cannot load the kubeconfig: {exc}", err=True)
        sys.exit(2)
    try:
        with api_client:
            view = gather(api_client, namespace)
    except Exception as exc:  # connection refused, TLS, timeouts: urllib3's and the client's
        host = getattr(api_client.configuration, "host", "?")
        click.echo(f"doctor: cannot read the cluster at {host}: {exc}", err=True)
        sys.exit(2)
    findings = diagnose(view, IgnoredNodes(frozenset(ignore_nodes), ignore_node_selector))
    for finding in findings:
        click.echo(str(finding))
    sys.exit(exit_code(findings))
