"""The lab's pure parts (plan, objects, failover analysis, rendering) and its small adapters
(REST client against the real test API server, backend and probe on loopback, process records).
No namespaces needed."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from metallb_lab.apiserver import ApiServer
from metallb_lab.cli import lab
from metallb_lab.lab import objects, processes, render
from metallb_lab.lab.commands import apiserver_command, node_kubeconfig, target_of, url_of
from metallb_lab.lab.kube import Access, KubeconfigError, RestClient, RestError, access_of
from metallb_lab.lab.layout import (
    ApiBackend,
    LayoutError,
    check_prefix,
    config_text,
    expected_owner,
    plan_lab,
)
from metallb_lab.lab.preflight import preflight
from metallb_lab.lab.probe import analyse, probe
from metallb_lab.lab.state import LabError, LabState
from metallb_lab.lab.status import LabStatus, NodeStatus, ServiceStatus
from metallb_lab.netns import is_documentation_address
from metallb_py.config import Protocol, parse_config

# --- layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [1, 3, 9])
def test_plan_uses_only_documentation_addresses(nodes: int) -> None:
    layout = plan_lab(nodes, prefix="mlblabx")
    assert layout.node_names == tuple(f"n{i}" for i in range(1, nodes + 1))
    assert layout.client_netns == "mlblabx-client"
    assert {n.netns for n in layout.nodes} == {f"mlblabx-n{i}" for i in range(1, nodes + 1)}
    for n in layout.nodes:
        assert is_documentation_address(n.ipv4_cidr)
        assert is_documentation_address(n.ipv6_cidr)
    assert len({n.ipv4 for n in layout.nodes}) == nodes
    assert len({n.bridge_port for n in layout.nodes}) == nodes


@pytest.mark.parametrize("nodes", [0, 10, -1])
def test_plan_refuses_bad_node_counts(nodes: int) -> None:
    with pytest.raises(LayoutError, match="between 1 and 9"):
        plan_lab(nodes)


@pytest.mark.parametrize("prefix", ["", "9lab", "lab-x", "a" * 25, "la b", "lab/x"])
def test_prefix_is_checked(prefix: str) -> None:
    with pytest.raises(LayoutError):
        check_prefix(prefix)


def test_services_cover_cluster_local_and_ipv6() -> None:
    layout = plan_lab(3)
    by_name = {s.name: s for s in layout.services}
    assert by_name["web"].traffic_policy == "Cluster"
    assert by_name["local"].local and by_name["local"].endpoint_nodes == ("n3",)
    assert by_name["web6"].family == "IPv6"
    assert by_name["web"].endpoint_nodes == ("n1", "n2", "n3")


def test_config_is_valid_and_pools_sit_in_the_lan() -> None:
    layout = plan_lab(3)
    config = parse_config(config_text(layout))
    (pool,) = config.pools
    assert pool.protocol is Protocol.LAYER2
    lan4 = ipaddress.ip_network("192.0.2.0/24")
    lan6 = ipaddress.ip_network("2001:db8::/64")
    for net in pool.cidrs:
        assert net.subnet_of(lan4 if net.version == 4 else lan6)  # type: ignore[arg-type]
    assert pool.contains(ipaddress.ip_address("192.0.2.100"))
    assert pool.contains(ipaddress.ip_address("2001:db8::100"))
    # The pool never covers a node or the client.
    for n in layout.nodes:
        assert not pool.contains(ipaddress.ip_address(n.ipv4))
        assert not pool.contains(ipaddress.ip_address(n.ipv6))


def test_expected_owner_is_the_election_winner_among_allowed_nodes() -> None:
    # Who wins at 192.0.2.100: n3, then n2, then n1 (tests/lab/test_election.py).
    layout = plan_lab(3)
    web, local, _ = layout.services
    ip = "192.0.2.100"
    assert expected_owner(web, ip, ["n1", "n2", "n3"]) == "n3"
    assert expected_owner(web, ip, ["n1", "n2"]) == "n2"
    assert expected_owner(web, ip, ["n1"]) == "n1"
    assert expected_owner(web, ip, []) is None
    # Local: only nodes with an endpoint, whatever the hash says.
    assert expected_owner(local, "192.0.2.101", ["n1", "n2", "n3"]) == "n3"
    assert expected_owner(local, ip, ["n1", "n2"]) is None


# --- objects --------------------------------------------------------------------------------------


def test_endpoint_slice_readiness_per_node_and_stable_addresses() -> None:
    s = objects.endpoint_slice(
        "web", "IPv4", ["n1", "n3"], all_nodes=["n1", "n2", "n3"], ready={"n3": False}
    )
    assert s["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}
    eps = {e["nodeName"]: e for e in s["endpoints"]}
    assert eps["n1"]["conditions"]["ready"] is True
    assert eps["n3"]["conditions"]["ready"] is False
    assert eps["n3"]["addresses"] == ["198.51.100.13"]
    v6 = objects.endpoint_slice("web6", "IPv6", ["n2"], all_nodes=["n1", "n2"])
    assert v6["endpoints"][0]["addresses"] == ["2001:db8:100::2"]
    assert v6["addressType"] == "IPv6"


def test_register_keeps_status_through_the_real_api_server() -> None:
    with ApiServer(namespaces=("metallb-system",)) as api:
        rest = RestClient(api.url)
        objects.register(rest, objects.node("n1", "192.0.2.11"))
        objects.register(rest, objects.speaker_pod("n1", "192.0.2.11"))
        node = rest.get("nodes", "n1")
        assert node["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
        pod = rest.get("pods", "speaker-n1", "metallb-system")
        assert pod["status"]["podIP"] == "192.0.2.11"
        assert pod["status"]["phase"] == "Running"
        # The same code works against the in-process server.
        objects.register(api, objects.node("n2", "192.0.2.12", ready=False))
        assert rest.get("nodes", "n2")["status"]["conditions"][0]["status"] == "False"
        layout = plan_lab(2)
        svc = rest.create(objects.service(layout.services[1]))
        assert svc["spec"]["externalTrafficPolicy"] == "Local"
        assert objects.ingress_ips(svc) == []
        rest.create(objects.endpoint_slice("local", "IPv4", ["n2"]))
        changed = objects.endpoint_slice("local", "IPv4", ["n2"], ready=False)
        rest.replace(changed)
        got = rest.get("endpointslices", "local-lab", "default")
        assert got["endpoints"][0]["conditions"]["ready"] is False
        assert [s["metadata"]["name"] for s in rest.list("services")] == ["kubernetes", "local"]
        with pytest.raises(RestError) as err:
            rest.get("services", "missing", "default")
        assert err.value.code == 404


def test_rest_client_reports_unreachable_servers() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RestError) as err:
        RestClient(f"http://127.0.0.1:{port}", timeout=2).list("nodes")
    assert err.value.code == 0


def test_ingress_ips() -> None:
    svc = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.100"}, {"hostname": "x"}]}}}
    assert objects.ingress_ips(svc) == ["192.0.2.100"]
    assert objects.ingress_ips({}) == []


def test_urls_bracket_ipv6() -> None:
    assert url_of("2001:db8::100") == "http://[2001:db8::100]:80/"
    assert target_of("192.0.2.100", 8080) == "192.0.2.100:8080"
    assert target_of("2001:db8::1") == "[2001:db8::1]:80"


# --- failover analysis ----------------------------------------------------------------------------


def _samples(pattern: str, step: float = 0.01) -> list[tuple[float, float, str | None]]:
    """One probe per character: a/b/c = that node answered, '.' = no answer."""
    return [
        (i * step, i * step + 0.001, None if c == "." else f"n{'abc'.index(c) + 1}")
        for i, c in enumerate(pattern)
    ]


def test_analyse_measures_the_gap_between_owners() -> None:
    result = analyse(_samples("aaaa" + "." * 30 + "bbbbb"))
    assert result is not None
    assert (result.old_owner, result.new_owner) == ("n1", "n2")
    assert result.gap == pytest.approx(0.31)
    assert result.failed == 30
    assert result.since(0.035) == pytest.approx(0.305)


def test_analyse_uses_the_owner_at_the_crash() -> None:
    # n2 owned it before the crash at t=0.055; n1 answered only at the very start.
    samples = _samples("aabbbb" + "." * 10 + "cccc")
    result = analyse(samples, crash_at=0.055)
    assert result is not None
    assert (result.old_owner, result.new_owner) == ("n2", "n3")
    assert result.gap == pytest.approx(0.11)


def test_analyse_without_takeover_or_answers() -> None:
    result = analyse(_samples("aaa......"))
    assert result is not None and result.new_owner is None and result.gap is None
    assert result.failed == 6
    assert analyse(_samples("....")) is None
    # Out-of-order completion does not matter: samples are ordered by send time.
    shuffled = list(reversed(_samples("aa..bb")))
    result = analyse(shuffled)
    assert result is not None and result.gap == pytest.approx(0.03) and result.failed == 2


# --- rendering ------------------------------------------------------------------------------------


def _status(nodes: int = 3) -> LabStatus:
    layout = plan_lab(nodes)
    return LabStatus(
        layout=layout,
        api_url="http://127.0.0.1:40000",
        kubeconfig="/run/metallb-py-lab/kubeconfig",
        processes_running=8,
        processes_total=9,
        nodes=tuple(
            NodeStatus(n.name, n.netns, n.ipv4, n.ipv6, speaker=n.name != "n1", link=True)
            for n in layout.nodes
        ),
        services=(
            ServiceStatus("web", "Cluster", ("192.0.2.100",), ("n2",), ("n2",), "n2"),
            ServiceStatus("web6", "Cluster", ("2001:db8::100",), (), (), None),
        ),
    )


def test_picture_shows_every_node_and_its_state() -> None:
    text = render.picture(_status())
    for word in ("mlblab-client", "br0", "[n1]", "[n2]", "[n3]", "192.0.2.13", "2001:db8::12"):
        assert word in text
    assert "speaker DOWN" in text
    assert "http://127.0.0.1:40000" in text
    assert "8 running of 9" in text


def test_services_table() -> None:
    status = _status()
    text = render.services_table(status.services)
    lines = text.splitlines()
    assert lines[0].split() == [
        "SERVICE",
        "POLICY",
        "IP",
        "ANNOUNCED",
        "BY",
        "ARP/NDP",
        "FROM",
        "REACHABLE",
        "ANSWERED",
        "BY",
    ]
    assert lines[2].split() == ["default/web", "Cluster", "192.0.2.100", "n2", "n2", "yes", "n2"]
    assert lines[3].split() == ["default/web6", "Cluster", "2001:db8::100", "-", "-", "NO", "-"]
    assert status.services[0].ok and not status.services[1].ok


# --- adapters on loopback -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_backend_and_probe_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    rec = processes.spawn(
        "backend",
        [
            sys.executable,
            "-m",
            "metallb_lab.lab.backend",
            "--name",
            "n7",
            f"--listen=127.0.0.1:{port}",
        ],
        tmp_path / "backend.log",
        "mlblabunit",
    )
    try:
        deadline = time.monotonic() + 10
        while "listening" not in processes.tail(rec.log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.running(rec.pid, rec.start_time)
        samples = asyncio.run(probe("127.0.0.1", port, 0.01, 1.0, 0.3, 5))
        assert len(samples) >= 10
        assert {s[2] for s in samples} == {"n7"}
        result = analyse(samples)
        assert result is not None and result.old_owner == "n7" and result.new_owner is None
        # A closed port: every probe fails fast, none answers.
        assert analyse(asyncio.run(probe("127.0.0.1", _free_port(), 0.01, 0.2, 0.1, 5))) is None
        # The marker finds it; a different lab id does not.
        assert rec.pid in processes.marked_pids("mlblabunit")
        assert rec.pid not in processes.marked_pids("mlblabother")
    finally:
        stopped = processes.stop([(rec.pid, rec.start_time)])
    assert stopped == [rec.pid]
    assert not processes.running(rec.pid, rec.start_time)
    assert processes.marked_pids("mlblabunit") == []


def test_probe_command_line_prints_ready_and_samples() -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metallb_lab.lab.backend",
            "--name",
            "x",
            f"--listen=127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "metallb_lab.lab.probe",
                f"--target=127.0.0.1:{port}",
                "--max-seconds=0.2",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
        assert json.loads(out[0])["event"] == "ready"
        done = json.loads(out[-1])
        assert done["event"] == "done" and all(s[2] == "x" for s in done["samples"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_backend_refuses_bad_listen() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metallb_lab.lab.backend", "--name", "x", "--listen", "nope"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "bad --listen" in proc.stderr


def test_running_tells_reused_pids_apart() -> None:
    stat = processes.stat_of(os.getpid())
    assert stat is not None
    assert processes.running(os.getpid(), stat[1])
    assert not processes.running(os.getpid(), stat[1] + 1)
    assert processes.stat_of(2**22 + 1) is None


def test_state_round_trip_and_bad_state(tmp_path: Path) -> None:
    state = LabState(prefix="mlblabx", mode="layer2", nodes=2, directory=str(tmp_path))
    state.processes.append(processes.ProcessRecord("speaker", 1, 2, "/x.log", "n1", ["a"]))
    state.service_ips = {"web": ["192.0.2.100"]}
    state.save()
    loaded = LabState.load(tmp_path)
    assert loaded == state
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(LabError, match="lab down"):
        LabState.load(tmp_path)
    assert LabState.load(tmp_path / "missing") is None


def test_preflight_names_missing_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        with pytest.raises(LabError, match="needs root"):
            preflight()
        return
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(
        LabError, match=r"missing ip, curl, arping, ndisc6: run `bash scripts/setup.sh`"
    ):
        preflight()


# --- API server backends --------------------------------------------------------------------------

KUBECONFIG_WITH_DATA = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "other", "cluster": {"server": "https://127.0.0.1:1"}},
        {
            "name": "lab",
            "cluster": {
                "server": "https://127.0.0.1:6443",
                "certificate-authority-data": "Q0EtUEVN",  # base64 of b"CA-PEM"
            },
        },
    ],
    "users": [
        {
            "name": "admin",
            "user": {
                "client-certificate-data": "Q0VSVA==",  # b"CERT"
                "client-key-data": "S0VZ",  # b"KEY"
            },
        }
    ],
    "contexts": [{"name": "c", "context": {"cluster": "lab", "user": "admin"}}],
    "current-context": "c",
}


def test_kubeconfig_access_from_data_fields() -> None:
    access = access_of(KUBECONFIG_WITH_DATA)
    assert access == Access("https://127.0.0.1:6443", b"CA-PEM", b"CERT", b"KEY", "")


def test_kubeconfig_access_from_files_and_a_token(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"FILE-CA")
    config = {
        "clusters": [
            {"name": "k", "cluster": {"server": "https://x:1", "certificate-authority": "ca.crt"}}
        ],
        "users": [{"name": "sa", "user": {"token": "abc.def"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "sa"}}],
        "current-context": "c",
    }
    access = access_of(config, tmp_path)
    assert (access.ca_pem, access.cert_pem, access.token) == (b"FILE-CA", None, "abc.def")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current-context": "nope"}, "no context named 'nope'"),
        ({"clusters": []}, "no cluster named 'lab'"),
        ({"clusters": [{"name": "lab", "cluster": {"server": "ftp://h"}}]}, "not an http"),
        (
            {"users": [{"name": "admin", "user": {"client-key-data": "%%%"}}]},
            "client-key-data is not base64",
        ),
    ],
)
def test_kubeconfig_problems_are_named(change: dict, message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        access_of({**KUBECONFIG_WITH_DATA, **change})


def test_rest_client_from_an_embedded_kubeconfig(tmp_path: Path) -> None:
    with ApiServer(namespaces=("metallb-system",)) as api:
        rest = RestClient.from_kubeconfig(api.kubeconfig_path(tmp_path / "kc"))
        assert rest.url == api.url and rest.tls is None and rest.token == ""
        assert rest.get("namespaces", "metallb-system")["metadata"]["name"] == "metallb-system"
    (tmp_path / "bad").write_text("clusters: [")
    with pytest.raises(KubeconfigError, match="bad"):
        RestClient.from_kubeconfig(tmp_path / "bad")


def test_node_kubeconfig_is_https_with_the_ca_and_token_for_kube_apiserver(
    tmp_path: Path,
) -> None:
    plain = yaml.safe_load(node_kubeconfig(tmp_path / "plain").read_text())
    assert access_of(plain) == Access("http://127.0.0.1:6443")
    path = node_kubeconfig(tmp_path / "tls", ca_data="Q0EtUEVN", token="t0k")
    assert access_of(yaml.safe_load(path.read_text())) == Access(
        "https://127.0.0.1:6443", b"CA-PEM", token="t0k"
    )
    assert path.stat().st_mode & 0o077 == 0  # a token inside: private


def test_apiserver_command_per_backend(tmp_path: Path) -> None:
    embedded = apiserver_command(tmp_path / "kc")
    assert embedded[embedded.index("--backend") + 1] == "embedded"
    assert "--data-dir" not in embedded
    real = apiserver_command(tmp_path / "kc", ApiBackend.KUBE_APISERVER, tmp_path / "cp")
    assert real[real.index("--backend") + 1] == "kube-apiserver"
    assert real[real.index("--data-dir") + 1] == str(tmp_path / "cp")


def test_speaker_pod_names_its_service_account_when_asked() -> None:
    assert "serviceAccountName" not in objects.speaker_pod("n1", "192.0.2.11")["spec"]
    pod = objects.speaker_pod("n1", "192.0.2.11", service_account="speaker")
    assert pod["spec"]["serviceAccountName"] == "speaker"
    assert pod["spec"]["containers"] == [{"name": "speaker", "image": "metallb-py"}]


def test_kubectl_hint_per_backend() -> None:
    url, kc = "https://127.0.0.1:40000", "/run/metallb-py-lab/kubeconfig"
    assert render.kubectl_hint(url, kc).startswith(f"kubectl --server {url} ")
    assert render.kubectl_hint(url, kc, "kube-apiserver").startswith(f"kubectl --kubeconfig {kc} ")
    assert "kube-apiserver https://127.0.0.1:40000" in render.picture(
        dataclasses.replace(_status(), api_url=url, apiserver="kube-apiserver")
    )


def test_a_state_written_before_backends_loads_as_embedded(tmp_path: Path) -> None:
    state = LabState(prefix="mlblabx", mode="layer2", nodes=2, directory=str(tmp_path))
    state.save()
    data = json.loads((tmp_path / "state.json").read_text())
    del data["apiserver"], data["controller_kubeconfig"]
    (tmp_path / "state.json").write_text(json.dumps(data))
    loaded = LabState.load(tmp_path)
    assert loaded is not None and loaded.apiserver == "embedded"


def test_flags_kube_apiserver_cannot_honour_are_refused() -> None:
    result = CliRunner().invoke(
        lab,
        [
            "apiserver",
            "--backend",
            "kube-apiserver",
            "--host",
            "0.0.0.0",
            "--history-size",
            "10000",  # the default value, but given: refused all the same
            "--bookmark-interval",
            "1",
            "--with-monitoring-crds",
            "--with-legacy-apis",
        ],
    )
    assert result.exit_code == 2
    for flag in (
        "--host 0.0.0.0",
        "--history-size",
        "--bookmark-interval",
        "--with-monitoring-crds",
        "--with-legacy-apis",
    ):
        assert flag in result.output, flag
    embedded = CliRunner().invoke(lab, ["apiserver", "--data-dir", "/nonexistent/x"])
    assert embedded.exit_code == 2 and "--data-dir" in embedded.output
