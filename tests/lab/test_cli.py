"""`metallb-py lab up|status|down|demo` end to end, as a user runs them (subprocesses, root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from metallb_lab.cli import lab
from metallb_lab.lab import processes
from metallb_lab.netns import wait_for

from .conftest import LabEnv

NO_TRACEBACK = "Traceback"


def _state(env: LabEnv) -> dict:
    return json.loads((env.directory / "state.json").read_text())


def _pids(state: dict) -> list[tuple[int, int]]:
    return [(p["pid"], p["start_time"]) for p in state["processes"]]


@pytest.mark.netns
def test_up_status_down(lab_env: LabEnv) -> None:
    up = lab_env.cli("up", "--nodes", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "kubectl --server http://127.0.0.1:" in up.stdout
    assert "[n1]" in up.stdout and "[n2]" in up.stdout
    state = _state(lab_env)
    recorded = _pids(state)
    assert {p["role"] for p in state["processes"]} == {
        "apiserver",
        "portal",
        "controller",
        "backend",
        "speaker",
    }
    assert all(processes.running(pid, st) for pid, st in recorded)
    assert sorted(lab_env.namespaces()) == sorted(
        f"{lab_env.prefix}-{s}" for s in ("client", "n1", "n2")
    )

    # kubectl on the host sees the lab's Services with their IPs.
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run(
            [kubectl, "--kubeconfig", state["kubeconfig"], "get", "svc", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        ingress = {
            s["metadata"]["name"]: s["status"]["loadBalancer"].get("ingress", [])
            for s in json.loads(out)["items"]
        }
        assert ingress["web"] and ingress["local"] and ingress["web6"]

    status = lab_env.cli("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    services = {s["name"]: s for s in report["services"]}
    assert set(services) == {"web", "local", "web6"}
    for s in services.values():
        assert s["ok"], s
        # One node announces, the same one answers ARP/NDP and serves the request.
        assert len(s["announcers"]) == 1
        assert s["layer2"] == s["announcers"] == [s["http"]]
    assert services["local"]["http"] == "n2"  # the only node with an endpoint
    assert ":" in services["web6"]["ips"][0]
    assert all(n["speaker"] and n["link"] for n in report["nodes"])

    text = lab_env.cli("status")
    assert text.returncode == 0
    assert "ANNOUNCED BY" in text.stdout and "default/web6" in text.stdout

    again = lab_env.cli("up")
    assert again.returncode == 1
    assert "already up" in again.stderr and NO_TRACEBACK not in again.stderr

    down = lab_env.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removed 3 namespaces" in down.stdout
    assert lab_env.namespaces() == []
    assert not any(processes.running(pid, st) for pid, st in recorded)
    assert processes.marked_pids(lab_env.prefix) == []
    assert not lab_env.directory.exists()

    idempotent = lab_env.cli("down")
    assert idempotent.returncode == 0
    assert "stopped 0 processes, removed 0 namespaces" in idempotent.stdout
    gone = lab_env.cli("status")
    assert gone.returncode == 1 and "no lab is up" in gone.stderr
    assert NO_TRACEBACK not in gone.stderr


@pytest.mark.netns
def test_demo_end_to_end(lab_env: LabEnv) -> None:
    demo = lab_env.cli("demo", timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    gap = re.search(r"gap seen by the client: (\d+) ms", demo.stdout)
    assert gap is not None, demo.stdout
    assert int(gap.group(1)) > 0
    assert re.search(r"last answer from (n\d), first answer from (n\d)", demo.stdout)
    assert "demo OK" in demo.stdout
    for n in ("curl http://192.0.2.", "curl http://[2001:db8::"):
        assert n in demo.stdout
    assert lab_env.namespaces() == []
    assert processes.marked_pids(lab_env.prefix) == []


@pytest.mark.netns
def test_down_after_a_crash_without_state(lab_env: LabEnv) -> None:
    up = lab_env.cli("up", "--nodes", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    state = _state(lab_env)
    recorded = _pids(state)
    # The lab "crashes": its API server, portal and one speaker die hard, the state is lost;
    # the controller, the other speaker and the backends are left running.
    for p in state["processes"]:
        if p["role"] in ("apiserver", "portal") or (p["role"], p["node"]) == ("speaker", "n1"):
            os.kill(p["pid"], signal.SIGKILL)
    (lab_env.directory / "state.json").unlink()
    wait_for(
        lambda: sum(processes.running(pid, st) for pid, st in recorded) == len(recorded) - 3,
        5,
        what="the killed processes to be gone",
    )

    # A new `up` refuses to build over the leftovers.
    refused = lab_env.cli("up")
    assert refused.returncode == 1 and "leftovers" in refused.stderr

    down = lab_env.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab_env.namespaces() == []
    assert not any(processes.running(pid, st) for pid, st in recorded)
    assert processes.marked_pids(lab_env.prefix) == []


@pytest.mark.netns
def test_clear_errors(lab_env: LabEnv, tmp_path: Path) -> None:
    bad_mode = lab_env.cli("up", "--mode", "bgp2")
    assert bad_mode.returncode == 2 and "--mode" in bad_mode.stderr

    bad_nodes = lab_env.cli("up", "--nodes", "0")
    assert bad_nodes.returncode == 2 and "--nodes" in bad_nodes.stderr

    # No iproute2 at all, then only iproute2: each missing tool is named with the fix.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    no_ip = subprocess.run(
        [*_python_m(), "lab", "up"],
        env={**lab_env.env, "PATH": str(empty)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_ip.returncode == 1
    assert "missing ip, curl, arping, ndisc6" in no_ip.stderr
    assert "scripts/setup.sh" in no_ip.stderr and NO_TRACEBACK not in no_ip.stderr
    only_ip = tmp_path / "only-ip"
    only_ip.mkdir()
    (only_ip / "ip").symlink_to(shutil.which("ip") or "/usr/sbin/ip")
    no_tools = subprocess.run(
        [*_python_m(), "lab", "up"],
        env={**lab_env.env, "PATH": str(only_ip)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_tools.returncode == 1
    assert "missing curl, arping, ndisc6" in no_tools.stderr
    assert "iputils-arping" in no_tools.stderr
    assert lab_env.namespaces() == []


def _python_m() -> list[str]:
    import sys

    return [sys.executable, "-m", "metallb_py"]


@pytest.mark.parametrize("command", ["up", "status", "down", "demo"])
def test_not_root_is_a_clear_error(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(lab, [command])
    assert result.exit_code == 1
    assert "root" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
