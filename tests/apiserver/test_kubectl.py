"""The real kubectl (the machine image's 1.32) against the test API server."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from metallb_lab.apiserver import ApiServer
from tests.apiserver.conftest import WITH_MONITORING, Kubectl, service

REPO = Path(__file__).resolve().parents[2]
LAYER2_EXAMPLE = REPO / "config-examples" / "configmap-layer2.yaml"

STACK = """\
apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
  labels: {app: metallb}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: controller, namespace: metallb-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "metallb-system:controller"}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metallb-system:controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "metallb-system:controller"}
subjects: [{kind: ServiceAccount, name: controller, namespace: metallb-system}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: metallb-system, labels: {app: metallb}}
spec:
  selector: {matchLabels: {app: metallb, component: controller}}
  template:
    metadata: {labels: {app: metallb, component: controller}}
    spec:
      containers:
      - name: controller
        image: quay.io/metallb/controller:v0.12.1
        args: [--port=7472, --config=config]
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: metallb-controller, namespace: metallb-system}
spec:
  podMetricsEndpoints: [{port: monitoring, path: /metrics}]
"""


def test_get_svc_all_namespaces(api: ApiServer, kubectl: Kubectl) -> None:
    api.create(service("web", type="LoadBalancer"))
    api.create(service("pending", type="LoadBalancer"))
    api.patch("services", "web", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}},
              subresource="status")  # fmt: skip
    out = kubectl("get", "svc", "-A").stdout
    lines = {line.split()[1]: line.split() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split()[:5] == [
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
    ]
    assert lines["web"][2] == "LoadBalancer" and lines["web"][4] == "192.0.2.20"
    assert lines["pending"][4] == "<pending>"
    assert lines["kubernetes"][3] == "10.96.0.1"
    as_json = json.loads(kubectl("get", "svc", "web", "-o", "json").stdout)
    assert as_json["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.20", "ipMode": "VIP"}]


def test_apply_configmap_then_get_yaml(api: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    api.ensure_namespace("metallb-system")
    assert "configmap/config created" in kubectl("apply", "-f", str(LAYER2_EXAMPLE)).stdout
    assert "configmap/config unchanged" in kubectl("apply", "-f", str(LAYER2_EXAMPLE)).stdout
    changed = tmp_path / "changed.yaml"
    changed.write_text(LAYER2_EXAMPLE.read_text().replace("192.168.1.240/28", "192.168.1.0/28"))
    assert "configmap/config configured" in kubectl("apply", "-f", str(changed)).stdout
    listed = yaml.safe_load(kubectl("get", "cm", "-n", "metallb-system", "-o", "yaml").stdout)
    config = next(i for i in listed["items"] if i["metadata"]["name"] == "config")
    assert "192.168.1.0/28" in config["data"]["config"]
    stored = api.get("configmaps", "config", namespace="metallb-system")
    annotations = stored["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations


def test_apply_into_missing_namespace_fails_like_a_cluster(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: nowhere}\n"
    )
    proc = kubectl("apply", "-f", str(manifest), check=False)
    assert proc.returncode != 0 and 'namespaces "nowhere" not found' in proc.stderr


def test_api_resources_are_the_builtin_groups(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", "--no-headers", "-o", "name").stdout.split()
    assert {"services", "configmaps", "deployments.apps", "endpointslices.discovery.k8s.io",
            "leases.coordination.k8s.io", "roles.rbac.authorization.k8s.io"} <= set(out)  # fmt: skip
    assert not [name for name in out if "monitoring" in name or "podsecuritypolicies" in name]
    versions = kubectl("api-versions").stdout.split()
    assert "policy/v1beta1" not in versions and "discovery.k8s.io/v1beta1" not in versions


@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])
def test_api_resources_with_monitoring_crds(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", "--api-group", "monitoring.coreos.com", "-o", "name").stdout
    assert set(out.split()) == {"podmonitors.monitoring.coreos.com",
                                "servicemonitors.monitoring.coreos.com",
                                "prometheusrules.monitoring.coreos.com"}  # fmt: skip


@pytest.mark.parametrize("api_options", [WITH_MONITORING], ids=["monitoring"])
def test_apply_a_stack_of_kinds(api: ApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(STACK)
    out = kubectl("apply", "-f", str(manifest)).stdout
    for created in ("namespace/metallb-system created", "serviceaccount/controller created",
                    "clusterrole.rbac.authorization.k8s.io/metallb-system:controller created",
                    "deployment.apps/controller created",
                    "podmonitor.monitoring.coreos.com/metallb-controller created"):  # fmt: skip
        assert created in out
    manifest.write_text(STACK.replace("--config=config", "--config=other").replace(
        "path: /metrics", "path: /metrics2"))  # fmt: skip
    out = kubectl("apply", "-f", str(manifest)).stdout
    assert "deployment.apps/controller configured" in out
    assert "podmonitor.monitoring.coreos.com/metallb-controller configured" in out  # merge patch
    assert "namespace/metallb-system unchanged" in out
    deployment = api.get("deployments", "controller", namespace="metallb-system")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][1] == "--config=other"
    assert deployment["metadata"]["generation"] == 2
    monitor = api.get("podmonitors", "metallb-controller", namespace="metallb-system")
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics2"


def test_server_side_apply(api: ApiServer, kubectl: Kubectl) -> None:
    api.ensure_namespace("metallb-system")
    out = kubectl("apply", "--server-side", "-f", str(LAYER2_EXAMPLE)).stdout
    assert "configmap/config serverside-applied" in out
    assert api.get("configmaps", "config", namespace="metallb-system")["data"]["config"]


def test_describe_service_shows_events(api: ApiServer, kubectl: Kubectl) -> None:
    svc = api.create(service("web", type="LoadBalancer"))
    api.create({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "web.1", "namespace": "default"},
                "involvedObject": {"kind": "Service", "name": "web", "namespace": "default",
                                   "uid": svc["metadata"]["uid"], "apiVersion": "v1"},
                "reason": "IPAllocated", "message": 'Assigned IP ["192.0.2.30"]', "type": "Normal",
                "source": {"component": "metallb-controller"}, "count": 1,
                "firstTimestamp": svc["metadata"]["creationTimestamp"],
                "lastTimestamp": svc["metadata"]["creationTimestamp"]})  # fmt: skip
    out = kubectl("describe", "svc", "web").stdout
    assert "Type:                     LoadBalancer" in out
    assert "IPAllocated" in out and 'Assigned IP ["192.0.2.30"]' in out
    assert "metallb-controller" in out
    events = kubectl("get", "events").stdout
    assert "IPAllocated" in events and "service/web" in events


def test_patch_and_delete(api: ApiServer, kubectl: Kubectl) -> None:
    api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    kubectl("patch", "cm", "c", "--type", "merge", "-p", '{"data": {"b": "2"}}')
    kubectl("patch", "cm", "c", "--type", "json", "-p", '[{"op": "remove", "path": "/data/a"}]')
    kubectl("patch", "cm", "c", "-p", '{"metadata": {"labels": {"x": "y"}}}')  # strategic
    got = api.get("configmaps", "c")
    assert got["data"] == {"b": "2"} and got["metadata"]["labels"] == {"x": "y"}
    kubectl("label", "cm", "c", "z=w")
    assert api.get("configmaps", "c")["metadata"]["labels"] == {"x": "y", "z": "w"}
    assert 'configmap "c" deleted' in kubectl("delete", "cm", "c").stdout
    proc = kubectl("get", "cm", "c", check=False)
    assert proc.returncode != 0 and 'configmaps "c" not found' in proc.stderr


def test_get_watch_prints_changes(api: ApiServer, tmp_path: Path) -> None:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed on this machine")
    kubeconfig = api.kubeconfig_path(tmp_path / "kubeconfig")
    proc = subprocess.Popen(
        [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
         "get", "cm", "--watch-only", "--no-headers"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while api.watch_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.watch_count() == 1, "kubectl did not start watching"
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}})
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        output = ""
        while "seen" not in output and time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                output += proc.stdout.read() or ""
        sel.close()
        assert "seen" in output
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_apply_the_project_manifests_and_config_examples(api: ApiServer, kubectl: Kubectl) -> None:
    manifests = REPO / "manifests"
    if not any(manifests.glob("*.yaml")):
        pytest.skip("no manifests in the repository yet")
    first = kubectl("apply", "-f", str(manifests)).stdout.splitlines()
    assert first and all(line.endswith(("created", "unchanged")) for line in first), first
    again = kubectl("apply", "-f", str(manifests)).stdout.splitlines()
    assert again and all(line.endswith("unchanged") for line in again), again
    # "unchanged" means kubectl read each object back and found what it applied.
    if (manifests / "Kustomization").exists() or (manifests / "kustomization.yaml").exists():
        kustomized = kubectl("apply", "-k", str(manifests)).stdout.splitlines()
        assert kustomized and all(line.endswith("unchanged") for line in kustomized), kustomized
    examples = [
        path for path in sorted((REPO / "config-examples").glob("*.yaml"))
        if {d.get("kind") for d in yaml.safe_load_all(path.read_text()) if d} == {"ConfigMap"}
    ]  # fmt: skip
    for path in examples:
        out = kubectl("apply", "-f", str(path)).stdout
        assert "configmap/" in out, path
        document = next(d for d in yaml.safe_load_all(path.read_text()) if d)
        stored = api.get("configmaps", document["metadata"]["name"],
                         namespace=document["metadata"].get("namespace", "default"))  # fmt: skip
        assert stored["data"] == document["data"]


def test_kubectl_auth_answers_for_a_server_that_allows_everything(kubectl: Kubectl) -> None:
    """No authentication, no authorization: anonymous, and allowed to do anything."""
    assert kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "create", "services", "--subresource=status").stdout == "yes\n"
    rights = kubectl("auth", "can-i", "--list").stdout.split("\n")
    assert rights[1].split() == ["*.*", "[]", "[]", "[*]"]
    assert rights[2].split() == ["[*]", "[]", "[*]"]
    who = json.loads(kubectl("auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"] == {
        "username": "system:anonymous",
        "groups": ["system:unauthenticated"],
    }
    listed = kubectl("get", "selfsubjectaccessreviews", check=False)
    assert listed.returncode != 0 and "MethodNotAllowed" in listed.stderr
