"""Connection to the Kubernetes API: `--kubeconfig`, else the in-cluster service account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client, config

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ClientConfigError(RuntimeError):
    """No usable API credentials: neither a kubeconfig nor an in-cluster service account."""


def api_client(kubeconfig: str | None = None) -> Any:
    """An ApiClient that leaves retries to us (informers and the work queue back off)."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError, TypeError, ValueError) as e:
        where = kubeconfig or "the in-cluster service account"
        raise ClientConfigError(f"cannot load Kubernetes credentials from {where}: {e}") from e
    configuration.retries = 0
    return client.ApiClient(configuration)


def default_namespace(flag: str | None, env: str | None) -> str | None:
    """--namespace, else METALLB_NAMESPACE, else the pod's service-account namespace file."""
    if flag:
        return flag
    if env:
        return env
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None
