"""`metallb-py doctor`: check a cluster for the usual reasons MetalLB does not work.

Exit codes: 0 nothing found (silent), 1 findings (one line each, with the fix), 2 the cluster
could not be reached or the kubeconfig not loaded.
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


@click.command()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Default: $KUBECONFIG, ~/.kube/config or in-cluster.",
)
@click.option("--context", help="kubeconfig context to use.")
@click.option("-n", "--namespace", default="metallb-system", show_default=True)
def doctor(kubeconfig: str | None, context: str | None, namespace: str) -> None:
    """Check the cluster: kube-proxy IPVS without strictARP, pools overlapping the Service or
    Pod networks, Ready nodes without a running speaker, the memberlist Secret, and the config
    ConfigMap. Prints one line per finding with how to fix it; prints nothing when all is well."""
    from metallb_py.doctor import diagnose, gather

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
    findings = diagnose(view)
    for finding in findings:
        click.echo(str(finding))
    sys.exit(1 if findings else 0)
