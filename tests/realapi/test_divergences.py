"""The same request on the embedded API server (`metallb_lab.apiserver`) and on kube-apiserver
1.32, side by side. Each check names what both answer, or, for a divergence we keep, what each
answers (docs/apiserver.md, "Deviations from kube-apiserver"). The expected outcomes are written
out here from what kube-apiserver answered; a check whose embedded outcome changes must move
between the two tables, and the docs with it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from metallb_lab.apiserver import ApiServer
from metallb_lab.control_plane import ControlPlane

from .conftest import ROOT

SERVERS = ("kube-apiserver", "embedded")


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """(name, admin kubeconfig) of each server."""
    if request.param == "embedded":
        with ApiServer() as api:
            yield "embedded", api.kubeconfig_path()
    else:
        cp: ControlPlane = request.getfixturevalue("control_plane")
        yield "kube-apiserver", cp.kubeconfig_path


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def _core(kubeconfig: Path) -> Any:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _answer(call: Callable[[], Any]) -> str:
    """ "ok", or the HTTP status and the field path of the first cause."""
    try:
        call()
    except client.ApiException as e:
        body = json.loads(e.body or "{}")
        causes = (body.get("details") or {}).get("causes") or [{}]
        return f"{e.status} {causes[0].get('field', '')}".strip()
    return "ok"


def _service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def _status_write(kubeconfig: Path, name: str, kind: str, ingress: list[Any]) -> Any:
    """Create a Service of type `kind`, write `ingress` to its status; the stored status."""
    core = _core(kubeconfig)
    created = json.loads(
        core.create_namespaced_service(
            "default", _service(name, type=kind), _preload_content=False
        ).data
    )
    created["status"] = {"loadBalancer": {"ingress": ingress}}
    resp = core.replace_namespaced_service_status(name, "default", created, _preload_content=False)
    return json.loads(resp.data)["status"]["loadBalancer"]["ingress"]


# -- the checks: kubeconfig -> outcome ---------------------------------------------------------


def _created(kc: Path, kind: str, name: str, *create: str) -> str:
    """`kubectl create ...` (kubectl's typed clients send built-in objects as protobuf), then
    the created object's user-given fields as kubectl reads them back."""
    done = _kubectl(kc, "create", *create)
    if done.returncode != 0:
        return "415" if "unknown format" in done.stderr else done.stderr
    got = json.loads(_kubectl(kc, "get", kind, name, "-o", "json").stdout)
    spec = got.get("spec") or {}
    shown = {
        "labels": got["metadata"].get("labels"),
        "data": got.get("data"),
        "type": got.get("type") or spec.get("type"),
        "ports": [
            (p.get("name"), p["port"], p.get("targetPort"), p.get("protocol"))
            for p in spec.get("ports") or []
        ],
        "selector": spec.get("selector"),
    }
    return json.dumps(shown, sort_keys=True)


def kubectl_create_configmap(kc: Path) -> str:
    return _created(kc, "cm", "div-cm", "configmap", "div-cm", "--from-literal=a=b")


def kubectl_create_secret(kc: Path) -> str:
    return _created(kc, "secret", "div-s", "secret", "generic", "div-s", "--from-literal=a=b")


def kubectl_create_namespace(kc: Path) -> str:
    return _created(kc, "namespace", "div-ns", "namespace", "div-ns")


def kubectl_create_service(kc: Path) -> str:
    return _created(kc, "svc", "div-lb", "service", "loadbalancer", "div-lb", "--tcp=80:8080")


def kubectl_auth_can_i(kc: Path) -> str:
    done = _kubectl(kc, "auth", "can-i", "list", "services")
    return done.stdout.strip() if done.returncode == 0 else done.stderr


def kubectl_auth_can_i_list(kc: Path) -> str:
    """The first rule of `can-i --list`: everything, for both servers' users."""
    done = _kubectl(kc, "auth", "can-i", "--list")
    return " ".join(done.stdout.split("\n")[1].split()) if done.returncode == 0 else done.stderr


def kubectl_get_a_review(kc: Path) -> str:
    """Reviews are answered, never stored: only create is allowed."""
    done = _kubectl(kc, "get", "selfsubjectaccessreviews")
    return "MethodNotAllowed" if "MethodNotAllowed" in done.stderr else done.stdout + done.stderr


def kubectl_auth_whoami(kc: Path) -> str:
    done = _kubectl(kc, "auth", "whoami", "-o", "json")
    if done.returncode == 0:
        return "groups " + ",".join(json.loads(done.stdout)["status"]["userInfo"]["groups"])
    return done.stderr


def source_range_not_a_cidr(kc: Path) -> str:
    body = _service("div-range", type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/33"])
    return _answer(lambda: _core(kc).create_namespaced_service("default", body))


def source_range_space_padded_with_host_bits(kc: Path) -> str:
    ranges = [" 10.0.0.1/8", "010.0.0.0/8", "2001:db8::1/64"]
    body = _service("div-range-ok", type="LoadBalancer", loadBalancerSourceRanges=ranges)
    return _answer(lambda: _core(kc).create_namespaced_service("default", body))


def source_ranges_on_a_cluster_ip_service(kc: Path) -> str:
    body = _service("div-range-cip", loadBalancerSourceRanges=["10.0.0.0/8"])
    return _answer(lambda: _core(kc).create_namespaced_service("default", body))


def ingress_status_on_a_cluster_ip_service(kc: Path) -> str:
    ingress = [{"ip": "192.0.2.1"}]
    return _answer(lambda: _status_write(kc, "div-cip", "ClusterIP", ingress))


def ingress_ip_with_a_leading_zero(kc: Path) -> str:
    ingress = [{"ip": "192.0.2.01"}]
    return _answer(lambda: _status_write(kc, "div-zero", "LoadBalancer", ingress))


def ingress_ip_mode_defaulted(kc: Path) -> str:
    stored = _status_write(kc, "div-mode", "LoadBalancer", [{"ip": "192.0.2.1"}])
    return f"ipMode {stored[0].get('ipMode')}"


def ingress_ip_mode_unknown(kc: Path) -> str:
    ingress = [{"ip": "192.0.2.1", "ipMode": "Bogus"}]
    return _answer(lambda: _status_write(kc, "div-bogus", "LoadBalancer", ingress))


def load_balancer_class_changed(kc: Path) -> str:
    core = _core(kc)
    body = _service("div-class", type="LoadBalancer", loadBalancerClass="a.example/x")
    created = json.loads(
        core.create_namespaced_service("default", body, _preload_content=False).data
    )
    created["spec"]["loadBalancerClass"] = "b.example/y"
    return _answer(lambda: core.replace_namespaced_service("div-class", "default", created))


def load_balancer_class_on_a_cluster_ip_service(kc: Path) -> str:
    body = _service("div-class-cip", loadBalancerClass="a.example/x")
    return _answer(lambda: _core(kc).create_namespaced_service("default", body))


def _slice(name: str, family: str, *addresses: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "addressType": family,
        "endpoints": [{"addresses": list(addresses)}],
    }


def endpoint_slice_address_of_the_other_family(kc: Path) -> str:
    body = _slice("div-slice-v6", "IPv4", "2001:db8::1")
    discovery: Any = client.DiscoveryV1Api(_core(kc).api_client)
    return _answer(lambda: discovery.create_namespaced_endpoint_slice("default", body))


def endpoint_slice_address_type_changed(kc: Path) -> str:
    discovery: Any = client.DiscoveryV1Api(_core(kc).api_client)
    created = json.loads(
        discovery.create_namespaced_endpoint_slice(
            "default", _slice("div-slice", "IPv4", "192.0.2.1"), _preload_content=False
        ).data
    )
    created["addressType"] = "IPv6"
    created["endpoints"] = [{"addresses": ["2001:db8::1"]}]
    return _answer(
        lambda: discovery.replace_namespaced_endpoint_slice("div-slice", "default", created)
    )


SAME: dict[Callable[[Path], str], str] = {
    kubectl_auth_can_i: "yes",
    kubectl_auth_can_i_list: "*.* [] [] [*]",
    kubectl_get_a_review: "MethodNotAllowed",
    kubectl_create_configmap: json.dumps(
        {"data": {"a": "b"}, "labels": None, "ports": [], "selector": None, "type": None},
        sort_keys=True,
    ),
    kubectl_create_secret: json.dumps(
        {"data": {"a": "Yg=="}, "labels": None, "ports": [], "selector": None, "type": "Opaque"},
        sort_keys=True,
    ),
    kubectl_create_namespace: json.dumps(
        {
            "data": None,
            "labels": {"kubernetes.io/metadata.name": "div-ns"},
            "ports": [],
            "selector": None,
            "type": None,
        },
        sort_keys=True,
    ),
    kubectl_create_service: json.dumps(
        {
            "data": None,
            "labels": {"app": "div-lb"},
            "ports": [["80-8080", 80, 8080, "TCP"]],
            "selector": {"app": "div-lb"},
            "type": "LoadBalancer",
        },
        sort_keys=True,
    ),
    source_range_not_a_cidr: "422 spec.LoadBalancerSourceRanges[0]",
    source_range_space_padded_with_host_bits: "ok",
    source_ranges_on_a_cluster_ip_service: "422 spec.LoadBalancerSourceRanges",
    ingress_status_on_a_cluster_ip_service: "422 status.loadBalancer.ingress",
    ingress_ip_with_a_leading_zero: "ok",
    ingress_ip_mode_defaulted: "ipMode VIP",
    ingress_ip_mode_unknown: "422 status.loadBalancer.ingress[0].ipMode",
    load_balancer_class_changed: "422 spec.loadBalancerClass",
    load_balancer_class_on_a_cluster_ip_service: "422 spec.loadBalancerClass",
    endpoint_slice_address_of_the_other_family: "422 endpoints[0].addresses[0]",
    endpoint_slice_address_type_changed: "422 addressType",
}
"""Checks both servers answer alike (some were divergences, fixed in the embedded one)."""

DIVERGES: dict[Callable[[Path], str], dict[str, str]] = {
    kubectl_auth_whoami: {
        # The admin's client certificate; the embedded server authenticates nobody.
        "kube-apiserver": "groups system:masters,system:authenticated",
        "embedded": "groups system:unauthenticated",
    },
}
"""The divergences we keep, each listed in docs/apiserver.md."""


@pytest.mark.parametrize("check", list(SAME), ids=lambda c: c.__name__)
def test_both_servers_answer_alike(server: tuple[str, Path], check: Callable[[Path], str]) -> None:
    _, kubeconfig = server
    assert check(kubeconfig) == SAME[check]


@pytest.mark.parametrize("check", list(DIVERGES), ids=lambda c: c.__name__)
def test_known_divergence(server: tuple[str, Path], check: Callable[[Path], str]) -> None:
    name, kubeconfig = server
    assert check(kubeconfig) == DIVERGES[check][name]
