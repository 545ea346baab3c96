"""manifests/: in sync with the builder, loadable by the kubernetes client, least privilege."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from metallb_py.addons import manifests

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
GENERATED = (
    "metallb.yaml",
    "prometheus/prometheus-operator.yaml",
    "prometheus/prometheus-rules.yaml",
)


def load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d is not None]


def all_objects() -> list[dict[str, Any]]:
    return [o for name in GENERATED for o in load(name)]


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in all_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def test_shipped_files_are_what_the_builder_makes():
    # Regenerate with `python -m metallb_lab.harness.manifests manifests/`.
    shipped = manifests.shipped_files()
    for name, text in shipped.items():
        assert (MANIFESTS / name).read_text() == text, f"manifests/{name} is stale"
    # Nothing else: a file left over from an older layout would still be applied.
    on_disk = {str(p.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("*") if p.is_file()}
    assert on_disk == set(shipped)


def test_install_is_only_builtin_kinds_with_the_namespace_first():
    """`kubectl apply -f manifests/` reads *.yaml/*.yml/*.json of the directory itself (not of
    subdirectories) in name order: what it reads must work on a stock cluster in one pass."""
    top = sorted(p.name for p in MANIFESTS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    assert top == ["metallb.yaml"]
    objs = load("metallb.yaml")
    assert (objs[0]["kind"], objs[0]["metadata"]["name"]) == ("Namespace", "metallb-system")
    builtin = ("v1", "apps/v1", "rbac.authorization.k8s.io/v1")
    assert {o["apiVersion"] for o in objs} <= set(builtin)
    assert not [o for o in objs if o["kind"] == "ConfigMap"]
    # Beside the operator's kinds, manifests/prometheus/ holds only the Role letting Prometheus
    # list the pods (and its binding).
    for name in GENERATED[1:]:
        objs = load(name)
        others = {o["kind"] for o in objs if not o["apiVersion"].startswith("monitoring.coreos.")}
        assert others <= {"Role", "RoleBinding"}, name


def test_core_objects_load_into_kubernetes_models_without_loss():
    """Deserialize into the client's V1 models and back; a misspelt field would be dropped."""
    client = ApiClient()
    seen = set()
    for obj in all_objects():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        model = client._ApiClient__deserialize(obj, f"V1{obj['kind']}")  # type: ignore[attr-defined]
        assert client.sanitize_for_serialization(model) == obj
        seen.add(obj["kind"])
    assert seen == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "DaemonSet",
        "Deployment",
    }


POD_MONITOR_SPEC = {"jobLabel", "selector", "namespaceSelector", "podMetricsEndpoints"}
POD_METRICS_ENDPOINT = {"port", "path", "interval", "relabelings", "metricRelabelings"}


def test_pod_monitors_select_the_pods_and_port():
    client = ApiClient()
    for comp in ("controller", "speaker"):
        pm = find("PodMonitor", f"metallb-{comp}")
        assert pm["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(pm["spec"]) <= POD_MONITOR_SPEC
        sel = client._ApiClient__deserialize(pm["spec"]["selector"], "V1LabelSelector")  # type: ignore[attr-defined]
        workload = find("DaemonSet" if comp == "speaker" else "Deployment", comp)
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels[k] == v for k, v in sel.match_labels.items())
        assert pm["spec"]["namespaceSelector"] == {"matchNames": ["metallb-system"]}
        for ep in pm["spec"]["podMetricsEndpoints"]:
            assert set(ep) <= POD_METRICS_ENDPOINT
            assert ep["port"] == "monitoring" and ep["path"] == "/metrics"
        # The alerts filter on job="metallb": the jobLabel must be a pod label with that value.
        assert pod_labels[pm["spec"]["jobLabel"]] == "metallb"


def rules_of(kind: str, name: str) -> list[dict[str, Any]]:
    return find(kind, name)["rules"]


def test_rbac_is_exactly_upstream_minus_psp():
    core = [""]
    assert rules_of("ClusterRole", "metallb-system:controller") == [
        {"apiGroups": core, "resources": ["services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": core, "resources": ["services/status"], "verbs": ["update"]},
        {"apiGroups": core, "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    assert rules_of("ClusterRole", "metallb-system:speaker") == [
        {
            "apiGroups": core,
            "resources": ["services", "endpoints", "nodes"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": core, "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    assert rules_of("Role", "config-watcher") == [
        {"apiGroups": core, "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
    ]
    assert rules_of("Role", "pod-lister") == [
        {"apiGroups": core, "resources": ["pods"], "verbs": ["list"]}
    ]
    assert rules_of("Role", "controller") == [
        {"apiGroups": core, "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": core,
            "resources": ["secrets"],
            "resourceNames": ["memberlist"],
            "verbs": ["list"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["controller"],
            "verbs": ["get"],
        },
        # The accepted-config store (metallb_py/k8s/accepted.py). `create` cannot be limited
        # by name in RBAC; `update`/`patch` are, to that one ConfigMap.
        {"apiGroups": core, "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": core,
            "resources": ["configmaps"],
            "resourceNames": ["config-accepted"],
            "verbs": ["update", "patch"],
        },
    ]
    assert rules_of("Role", "prometheus-k8s") == [
        {"apiGroups": core, "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    roles = sorted(
        (o["kind"], o["metadata"]["name"])
        for o in all_objects()
        if o["kind"] in ("ClusterRole", "Role")
    )
    assert roles == [
        ("ClusterRole", "metallb-system:controller"),
        ("ClusterRole", "metallb-system:speaker"),
        ("Role", "config-watcher"),
        ("Role", "controller"),
        ("Role", "pod-lister"),
        ("Role", "prometheus-k8s"),
    ]
    for o in all_objects():
        for rule in o.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert "podsecuritypolicies" not in rule["resources"]


def subjects(kind: str, name: str) -> list[tuple[str, str]]:
    o = find(kind, name)
    return [(s["name"], s["namespace"]) for s in o["subjects"]]


def test_bindings_give_each_account_only_its_roles():
    ns = "metallb-system"
    assert subjects("ClusterRoleBinding", "metallb-system:controller") == [("controller", ns)]
    assert subjects("ClusterRoleBinding", "metallb-system:speaker") == [("speaker", ns)]
    assert subjects("RoleBinding", "config-watcher") == [("controller", ns), ("speaker", ns)]
    assert subjects("RoleBinding", "pod-lister") == [("speaker", ns)]
    assert subjects("RoleBinding", "controller") == [("controller", ns)]
    assert subjects("RoleBinding", "prometheus-k8s") == [("prometheus-k8s", "monitoring")]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for o in all_objects():
            if o["kind"] == kind:
                ref = o["roleRef"]
                assert (ref["kind"], ref["name"]) == (
                    kind.replace("Binding", ""),
                    o["metadata"]["name"],
                )


def test_namespace_pod_security_admission():
    ns = load("metallb.yaml")[0]
    assert ns["metadata"]["name"] == "metallb-system"
    labels = ns["metadata"]["labels"]
    assert labels["app"] == "metallb"
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def container(kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    workload = find(kind, name)
    pod = workload["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return pod, c


def test_speaker_security_and_ports():
    pod, c = container("DaemonSet", "speaker")
    assert pod["hostNetwork"] is True
    assert pod["serviceAccountName"] == "speaker"
    sc = c["securityContext"]
    assert sc["capabilities"] == {"add": ["NET_RAW"], "drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "privileged" not in sc or sc["privileged"] is False
    assert c["image"] == manifests.DEFAULT_IMAGE
    assert c["args"] == ["speaker", "--port=7472", "--config=config", "--log-level=info"]
    ports = {(p["name"], p["containerPort"], p.get("protocol", "TCP")) for p in c["ports"]}
    assert ports == {("monitoring", 7472, "TCP"), ("memberlist-udp", 7946, "UDP")}
    env = {e["name"]: e for e in c["env"]}
    assert env["METALLB_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["METALLB_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["METALLB_ML_BIND_ADDR"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["METALLB_ML_BIND_PORT"]["value"] == "7946"
    assert env["METALLB_ML_LABELS"]["value"] == "app=metallb,component=speaker"
    assert env["METALLB_ML_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "memberlist",
        "key": "secretkey",
    }


def test_controller_security_meets_restricted_profile():
    pod, c = container("Deployment", "controller")
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65534
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert "hostNetwork" not in pod
    assert c["args"] == ["controller", "--port=7472", "--config=config", "--log-level=info"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["METALLB_ML_SECRET_NAME"] == "memberlist"
    assert env["METALLB_DEPLOYMENT"] == "controller"
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("monitoring", 7472)]


@pytest.mark.parametrize(("kind", "name"), [("DaemonSet", "speaker"), ("Deployment", "controller")])
def test_probes_labels_and_selectors(kind: str, name: str):
    workload = find(kind, name)
    assert workload["metadata"]["labels"] == {"app": "metallb", "component": name}
    template = workload["spec"]["template"]
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector == {"app": "metallb", "component": name}
    assert all(template["metadata"]["labels"][k] == v for k, v in selector.items())
    _pod, c = container(kind, name)
    assert c["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "monitoring"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "monitoring"}
    assert template["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_every_object_is_labelled_app_metallb():
    for o in all_objects():
        assert o["metadata"]["labels"]["app"] == "metallb", (o["kind"], o["metadata"]["name"])


def test_kustomization_lists_the_install():
    kust = yaml.safe_load((MANIFESTS / "Kustomization").read_text())
    assert kust["kind"] == "Kustomization"
    assert kust["resources"] == ["metallb.yaml"]
    for res in kust["resources"]:
        assert (MANIFESTS / res).is_file()
    # `kubectl apply -f manifests/` reads only *.yaml/*.yml/*.json: the kustomization must not
    # be one of them, or kubectl tries to create a Kustomization object and fails.
    assert not list(MANIFESTS.glob("kustomization.*"))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_the_install():
    out = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    kinds = sorted({d["kind"] for d in yaml.safe_load_all(out.stdout) if d})
    assert kinds == sorted({o["kind"] for o in load("metallb.yaml")})


def test_rendered_config_names_the_accepted_store_in_rbac():
    """A Helm-style render names the config after the release; the store follows it."""
    opts = manifests.InstallOptions(config_name="metallb", config_text="address-pools: []\n")
    role = next(
        o
        for o in manifests.rbac_objects(opts)
        if (o["kind"], o["metadata"]["name"]) == ("Role", "controller")
    )
    named = [r for r in role["rules"] if r.get("resourceNames") == ["metallb-accepted"]]
    assert named == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["metallb-accepted"],
            "verbs": ["update", "patch"],
        }
    ]
    assert manifests.accepted_config_name("config") == "config-accepted"
