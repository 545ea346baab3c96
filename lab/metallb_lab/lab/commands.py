"""The command lines, environments and kubeconfigs of the lab's processes.

Pure, except `write_kubeconfig` and `node_kubeconfig`, which write the file they describe. The
lab, the end-to-end tests and the benchmarks start the API server, the portal, the controller,
the speakers and the backends with these, so all of them run the components the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from metallb_lab.control_plane import kubeconfig_document
from metallb_lab.lab.layout import (
    BACKEND_PORT,
    METALLB_NAMESPACE,
    NODE_API_PORT,
    SPEAKER_LABELS,
    SPEAKER_METRICS_PORT,
    ApiBackend,
)

KUBECONFIG_NAME = "metallb-py-lab"


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def speaker_args(kubeconfig: str | Path, port: int = SPEAKER_METRICS_PORT) -> list[str]:
    """`metallb-py` arguments of a lab speaker (after `python -m metallb_py`)."""
    return _component_args("speaker", kubeconfig, port)


def speaker_env(node: str, address: str, secret: str) -> dict[str, str]:
    """Membership on: heartbeats from the node address, peers from the speaker Pods."""
    return {
        "METALLB_NODE_NAME": node,
        "METALLB_ML_BIND_ADDR": address,
        "METALLB_ML_LABELS": ",".join(f"{k}={v}" for k, v in SPEAKER_LABELS.items()),
        "METALLB_ML_SECRET_KEY": secret,
    }


def controller_args(kubeconfig: str | Path, port: int = 0) -> list[str]:
    """`metallb-py` arguments of the lab's controller (port 0: a free metrics port)."""
    return _component_args("controller", kubeconfig, port)


def _component_args(component: str, kubeconfig: str | Path, port: int) -> list[str]:
    flags = {"--kubeconfig": str(kubeconfig), "--namespace": METALLB_NAMESPACE, "--port": str(port)}
    return [component, *(word for flag in flags.items() for word in flag)]


def portal_command(api_port: int, namespaces: Iterable[str]) -> list[str]:
    return python_command(
        "metallb_lab.portal",
        "--target",
        f"127.0.0.1:{api_port}",
        *(f"--listen={ns}=127.0.0.1:{NODE_API_PORT}" for ns in namespaces),
    )


def write_kubeconfig(
    path: Path,
    server: str,
    namespace: str = METALLB_NAMESPACE,
    *,
    ca_data: str | None = None,
    token: str | None = None,
) -> Path:
    """A kubeconfig for `server`; https ones trust `ca_data` (base64 PEM) and send `token`.
    Private (0600): it may hold a token."""
    user = {"token": token} if token else {}
    document = kubeconfig_document(server, user, namespace, ca_data=ca_data, name=KUBECONFIG_NAME)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return path


def node_kubeconfig(
    path: Path,
    namespace: str = METALLB_NAMESPACE,
    *,
    ca_data: str | None = None,
    token: str | None = None,
) -> Path:
    """A kubeconfig for processes in node namespaces: the portal's 127.0.0.1:6443, plain HTTP
    to the embedded server, HTTPS (the same CA as on the host) to kube-apiserver."""
    scheme = "https" if ca_data else "http"
    return write_kubeconfig(
        path,
        f"{scheme}://127.0.0.1:{NODE_API_PORT}",
        namespace,
        ca_data=ca_data,
        token=token,
    )


def url_of(ip: str, port: int = BACKEND_PORT) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/"


def target_of(ip: str, port: int = BACKEND_PORT) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def apiserver_command(
    kubeconfig_out: Path,
    backend: ApiBackend = ApiBackend.EMBEDDED,
    data_dir: Path | None = None,
) -> list[str]:
    """The API server on the host's loopback, on a free port; it prints its URL and kubeconfig
    as JSON. kube-apiserver keeps its data in `data_dir` (a new directory)."""
    data = (
        ["--data-dir", str(data_dir)] if backend is ApiBackend.KUBE_APISERVER and data_dir else []
    )
    return python_command(
        "metallb_py",
        "lab",
        "apiserver",
        "--backend",
        str(backend),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--namespace",
        METALLB_NAMESPACE,
        "--kubeconfig-out",
        str(kubeconfig_out),
        *data,
    )


def backend_command(node: str, ips: Iterable[str]) -> list[str]:
    """A node's backend, answering with the node's name on every Service IP."""
    return python_command(
        "metallb_lab.lab.backend",
        "--name",
        node,
        *(f"--listen={target_of(ip)}" for ip in ips),
    )
