"""`metallb-py lab apiserver` as a subprocess, driven over HTTP like the lab drives it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client, config

from metallb_lab.netns import wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "metallb_py", "lab", "apiserver", "--port", "0",
         "--kubeconfig-out", str(kubeconfig), "--namespace", "metallb-system",
         "--bookmark-interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield proc, ready
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def post(url: str, action: str, **params: Any) -> dict[str, Any]:
    import http.client

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(
        "POST", f"/_fault/{action}", json.dumps(params), {"Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200, body
    return body


def test_lab_apiserver_subprocess(server: tuple[subprocess.Popen[str], dict[str, Any]]) -> None:
    proc, ready = server
    kubeconfig = Path(ready["kubeconfig"])
    assert (
        yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == ready["url"]
    )
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        core: Any = client.CoreV1Api(api_client)
        names = {n.metadata.name for n in core.list_namespace().items}
        assert "metallb-system" in names
        core.create_namespaced_config_map("metallb-system", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="config"), data={"config": "{}"}))  # fmt: skip
        post(ready["url"], "fail", count=1, code=500)
        with pytest.raises(client.ApiException) as info:
            core.read_namespaced_config_map("config", "metallb-system")
        assert info.value.status == 500
        post(ready["url"], "outage", seconds=1, mode="refuse")
        parts = urlsplit(ready["url"])

        def connects() -> bool:
            try:
                socket.create_connection((parts.hostname, parts.port), timeout=1).close()
                return True
            except OSError:
                return False

        assert not connects()
        wait_for(connects, timeout=10, what="the listener to come back")
        cfg = core.read_namespaced_config_map("config", "metallb-system")
        assert cfg.data == {"config": "{}"}
    finally:
        api_client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_lab_apiserver_refuses_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "metallb_py", "lab", "apiserver", "--port", str(port)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode != 0 and "cannot listen" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "groups"),
    [
        ((), set()),
        (("--with-monitoring-crds",), {"monitoring.coreos.com"}),
        (("--with-legacy-apis",), {"policy"}),
    ],
    ids=["default", "monitoring", "legacy"],
)
def test_lab_apiserver_serves_extras_only_when_asked(
    flags: tuple[str, ...], groups: set[str]
) -> None:
    import http.client

    proc = subprocess.Popen(
        [sys.executable, "-m", "metallb_py", "lab", "apiserver", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = urlsplit(json.loads(proc.stdout.readline())["url"])
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        conn.request("GET", "/apis")
        served = {g["name"] for g in json.loads(conn.getresponse().read())["groups"]}
        conn.close()
        builtin = {"apps", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io",
                   "rbac.authorization.k8s.io", "authentication.k8s.io",
                   "authorization.k8s.io"}  # fmt: skip
        assert served == builtin | groups
    finally:
        proc.terminate()
        proc.wait(10)
