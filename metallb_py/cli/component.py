"""What `controller` and `speaker` resolve the same way before starting (spec 3.1, 4.1)."""

from __future__ import annotations

import os
from typing import Any

import click

from metallb_py.config import BgpType


def resolve(
    namespace: str | None, kubeconfig: str | None, log_level: str
) -> tuple[str, BgpType, Any]:
    """Set up logging; return (namespace, METALLB_BGP_TYPE, API client) or a clear error."""
    from metallb_py import logs
    from metallb_py.k8s.client import ClientConfigError, api_client, default_namespace

    logs.setup(log_level)
    ns = default_namespace(namespace, os.environ.get("METALLB_NAMESPACE"))
    if not ns:
        raise click.ClickException("unable to get namespace: set --namespace or METALLB_NAMESPACE")
    raw = os.environ.get("METALLB_BGP_TYPE") or "native"
    try:
        bgp_type = BgpType(raw)
    except ValueError:
        raise click.ClickException(f"METALLB_BGP_TYPE must be native or frr, not {raw!r}") from None
    try:
        client = api_client(kubeconfig)
    except ClientConfigError as e:
        raise click.ClickException(str(e)) from None
    return ns, bgp_type, client
