"""`metallb-py lab` on the real kube-apiserver: `lab apiserver --backend kube-apiserver` (the JSON
line, an admin kubeconfig kubectl accepts, nothing left after SIGTERM or a SIGKILL of the
wrapper) and the whole lab on it (`up`/`status`/`down` with the manifests' ServiceAccounts,
the demo). Expectations come from kubectl, /proc and `ip netns`, not from the lab's code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab.lab import processes
from metallb_lab.netns import wait_for
from tests.lab.conftest import LabEnv, own_lab

from .conftest import ROOT, _bin_dir

READY_TIMEOUT = 120.0


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line holds `text` (a data directory of the test's own)."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _kubectl(binary: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


class Wrapper:
    """`metallb-py lab apiserver --backend kube-apiserver` as a user starts it."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.kubeconfig = tmp / "admin.kubeconfig"
        self.stdout, self.stderr = tmp / "stdout", tmp / "stderr"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = self._start(out.fileno(), err.fileno())

    def _start(self, out: int, err: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metallb_py",
                "lab",
                "apiserver",
                "--backend",
                "kube-apiserver",
                "--kubeconfig-out",
                str(self.kubeconfig),
                "--namespace",
                "metallb-system",
                "--data-dir",
                str(self.data),
            ],
            stdout=out,
            stderr=err,
        )

    def ready_line(self) -> dict[str, str]:
        def line() -> str | None:
            text = self.stdout.read_text()
            if not text.endswith("\n") and self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.stderr.read_text()}")
            return text if text.endswith("\n") else None

        text = wait_for(line, READY_TIMEOUT, 0.1, "the JSON line")
        assert text is not None and text.count("\n") == 1, text
        return dict(json.loads(text))

    def children(self) -> list[int]:
        """etcd and kube-apiserver: the processes naming the data directory, but the wrapper."""
        return [pid for pid in _pids_mentioning(str(self.data)) if pid != self.proc.pid]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in _pids_mentioning(str(self.data)):
            processes.signal_pid(pid, signal.SIGKILL)


@pytest.fixture
def wrapper(tmp_path: Path) -> Iterator[Wrapper]:
    _bin_dir()
    started = Wrapper(tmp_path)
    try:
        yield started
    finally:
        started.close()


def test_lab_apiserver_on_kube_apiserver_serves_kubectl_and_stops_clean(
    wrapper: Wrapper,
) -> None:
    ready = wrapper.ready_line()
    assert set(ready) == {"url", "kubeconfig"}
    assert ready["url"].startswith("https://127.0.0.1:")
    assert ready["kubeconfig"] == str(wrapper.kubeconfig)
    for binary in ("kubectl", str(_bin_dir() / "kubectl")):
        version = _kubectl(binary, wrapper.kubeconfig, "version", "-o", "json")
        assert version.returncode == 0, version.stderr
        server = json.loads(version.stdout)["serverVersion"]
        assert server["gitVersion"].startswith("v1.32."), server
        rights = _kubectl(binary, wrapper.kubeconfig, "auth", "can-i", "--list")
        assert rights.returncode == 0, rights.stderr
        assert "*.*" in rights.stdout.replace(" ", "")  # the admin is in system:masters
    whoami = _kubectl("kubectl", wrapper.kubeconfig, "auth", "whoami", "-o", "json")
    groups = json.loads(whoami.stdout)["status"]["userInfo"]["groups"]
    assert "system:masters" in groups
    namespace = _kubectl("kubectl", wrapper.kubeconfig, "get", "namespace", "metallb-system")
    assert namespace.returncode == 0, namespace.stderr

    children = wrapper.children()
    assert len(children) == 2, children  # etcd and kube-apiserver
    wrapper.proc.send_signal(signal.SIGTERM)
    assert wrapper.proc.wait(timeout=30) == 0
    assert not any(processes.running(pid) for pid in children)
    assert not wrapper.data.exists()


def test_a_sigkilled_wrapper_takes_etcd_and_kube_apiserver_with_it(wrapper: Wrapper) -> None:
    wrapper.ready_line()
    children = wrapper.children()
    assert len(children) == 2, children
    wrapper.proc.kill()
    wrapper.proc.wait(timeout=10)
    wait_for(
        lambda: not any(processes.running(pid) for pid in children),
        10,
        0.1,
        "etcd and kube-apiserver to die with their parent",
    )


# --- the lab on kube-apiserver ---------------------------------------------------------------


@pytest.fixture
def real_lab(tmp_path: Path) -> Iterator[LabEnv]:
    _bin_dir()
    with own_lab(tmp_path) as env:
        yield env


def _nothing_left(env: LabEnv) -> None:
    assert env.namespaces() == []
    assert processes.marked_pids(env.prefix) == []
    assert _pids_mentioning(str(env.directory)) == []  # etcd's data dir is in the lab's
    assert not env.directory.exists()


@pytest.mark.netns
@pytest.mark.slow
def test_lab_up_status_down_on_kube_apiserver(real_lab: LabEnv) -> None:
    up = real_lab.cli("up", "--nodes", "2", "--apiserver", "kube-apiserver")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "API server kube-apiserver https://127.0.0.1:" in up.stdout
    state = json.loads((real_lab.directory / "state.json").read_text())
    admin = Path(state["kubeconfig"])

    status = real_lab.cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["apiserver"] == "kube-apiserver"
    assert all(s["ok"] for s in report["services"]), report["services"]

    # The lab applied the manifests; its components act as their ServiceAccounts: the
    # controller on the host, the speakers through the portal in their node namespace (TLS
    # end to end, the same CA).
    assert _kubectl("kubectl", admin, "-n", "metallb-system", "get", "role", "controller").stdout
    controller = Path(state["controller_kubeconfig"])
    in_node = ["ip", "netns", "exec", f"{real_lab.prefix}-n1", "kubectl"]
    for runner, kubeconfig, account in (
        (["kubectl"], controller, "controller"),
        (in_node, Path(state["node_kubeconfig"]), "speaker"),
    ):
        who = subprocess.run(
            [*runner, "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert who.returncode == 0, who.stderr
        user = json.loads(who.stdout)["status"]["userInfo"]["username"]
        assert user == f"system:serviceaccount:metallb-system:{account}"
    denied = _kubectl("kubectl", controller, "delete", "node", "n1")
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    ingress = json.loads(_kubectl("kubectl", admin, "get", "svc", "-o", "json").stdout)
    ips = {s["metadata"]["name"]: s["status"]["loadBalancer"] for s in ingress["items"]}
    assert all(ips[name].get("ingress") for name in ("web", "local", "web6"))

    gone = real_lab.cli("down")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    _nothing_left(real_lab)


@pytest.mark.netns
@pytest.mark.slow
def test_lab_demo_on_kube_apiserver_leaves_nothing(real_lab: LabEnv) -> None:
    started = time.monotonic()
    demo = real_lab.cli("demo", "--apiserver", "kube-apiserver", timeout=400)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "API server kube-apiserver" in demo.stdout
    assert "demo OK" in demo.stdout
    _nothing_left(real_lab)
    assert time.monotonic() - started < 300


@pytest.mark.netns
@pytest.mark.slow
def test_lab_down_after_the_api_server_wrapper_was_sigkilled(real_lab: LabEnv) -> None:
    up = real_lab.cli("up", "--nodes", "2", "--apiserver", "kube-apiserver")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((real_lab.directory / "state.json").read_text())
    (wrapper,) = [p for p in state["processes"] if p["role"] == "apiserver"]
    os.kill(wrapper["pid"], signal.SIGKILL)
    gone = real_lab.cli("down")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    _nothing_left(real_lab)


@pytest.mark.netns
@pytest.mark.slow
def test_lab_up_on_kube_apiserver_stopped_by_sigterm_leaves_nothing(real_lab: LabEnv) -> None:
    log = real_lab.directory.parent / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "metallb_py", "lab", "up", "--apiserver", "kube-apiserver"],
            env=real_lab.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Stopped once kube-apiserver answers (the lab is applying the manifests).
        wait_for(lambda: "manifests" in log.read_text(), READY_TIMEOUT, 0.1, "kube-apiserver up")
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
    assert "stopped by SIGTERM; cleaned up" in log.read_text()
    _nothing_left(real_lab)
