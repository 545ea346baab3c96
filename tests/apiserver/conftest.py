"""Fixtures: a fresh test API server per test, real `kubernetes` clients and kubectl bound to it."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer


@pytest.fixture
def api_options() -> dict[str, Any]:
    """Extra `ApiServer` arguments; a test overrides them with
    `@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])`."""
    return {}


WITH_MONITORING: dict[str, Any] = {"with_monitoring_crds": True}


@pytest.fixture
def api(api_options: dict[str, Any]) -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2, **api_options) as server:
        yield server


@pytest.fixture
def api_client(api: ApiServer) -> Iterator[Any]:
    c = api.client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def status_of(exc: client.ApiException) -> dict[str, Any]:
    """The Status body of a failed request."""
    body = json.loads(exc.body or "{}")
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(api: ApiServer, tmp_path: Path) -> Kubectl:
    """Run the machine's real kubectl against `api` (skipped where kubectl is missing)."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed on this machine")
    kubeconfig = api.kubeconfig_path(tmp_path / "kubeconfig")
    cache = tmp_path / "kube-cache"

    def run(*args: str, stdin: str | None = None, check: bool = True) -> Any:
        proc = subprocess.run(
            [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    return run


def raw(
    api: ApiServer,
    method: str,
    path: str,
    body: bytes | str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One plain HTTP request (for what the generated client refuses to send)."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
    try:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, **(headers or {})}
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        payload = resp.read()
        try:
            parsed: Any = json.loads(payload)
        except ValueError:
            parsed = payload.decode(errors="replace")
        return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}], **spec},
    }
