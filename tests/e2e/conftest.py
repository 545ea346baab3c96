"""Run metallb-py components as real subprocesses against the test API server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.lab.commands import controller_args
from metallb_lab.lab.objects import endpoint_slice
from metallb_lab.netns import wait_for
from metallb_py.metrics import parse_exposition

NS = "metallb-system"


class Component:
    """A `metallb-py <component>` subprocess; its JSON log lines are collected. Every one a
    test starts is killed when the test ends (`_no_component_outlives_its_test`)."""

    started: list[Component] = []  # noqa: RUF012 - one registry for the whole run

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, wrap: list[str] | None = None
    ) -> None:
        self.args = args
        self.wrap = wrap or []
        self.env = {**os.environ, **(env or {})}
        self.lines: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> Component:
        self.lines = []
        self.proc = subprocess.Popen(
            [*self.wrap, sys.executable, "-m", "metallb_py", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        Component.started.append(self)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = {"raw": line.rstrip()}
            with self._lock:
                self.lines.append(entry)

    def logs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.lines)

    def log_has(self, **fields: str) -> bool:
        return any(all(e.get(k) == v for k, v in fields.items()) for e in self.logs())

    @property
    def port(self) -> int:
        def find() -> int | None:
            for entry in self.logs():
                if entry.get("op") == "startup" and "port" in entry:
                    return int(entry["port"])
            return None

        port = wait_for(find, 20, what="the component's metrics port in its log")
        assert port is not None
        return port

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return parse_exposition(r.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, frozenset(labels.items())))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def put_endpoints(api: ApiServer, name: str, nodes: list[str], ready: bool = True) -> None:
    """Create or replace the EndpointSlice of Service `apps/<name>` (one endpoint per node)."""
    body = endpoint_slice(name, "IPv4", nodes, ready=ready, namespace="apps")
    try:
        old = api.get("endpointslices", body["metadata"]["name"], "apps", "discovery.k8s.io/v1")
    except ApiError:
        api.create(body)
        return
    body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    api.update(body)


@pytest.fixture(autouse=True)
def _no_component_outlives_its_test() -> Iterator[None]:
    """Also when the test fails or the run is interrupted (SIGINT, or SIGTERM: tests/conftest.py
    turns it into KeyboardInterrupt, and pytest tears fixtures down)."""
    yield
    while Component.started:
        Component.started.pop().kill()


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(namespaces=(NS, "apps")) as server:
        yield server


@pytest.fixture
def kubeconfig(api: ApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig_path(tmp_path / "kubeconfig")


@pytest.fixture
def start_controller(kubeconfig: Path) -> Iterator[Any]:
    started: list[Component] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> Component:
        c = Component(
            [*controller_args(kubeconfig), *extra],
            env,
        ).start()
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()
