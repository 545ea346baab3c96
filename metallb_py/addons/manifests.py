"""The Kubernetes objects that install metallb-py (docs/install.md).

One builder serves `manifests/` (built from the defaults, see `write_manifests`) and
`metallb-py render` (built from addon values), so the shipped files and rendered installs cannot
drift apart. Differences from upstream v0.12.1, all deliberate:

* one image for both components (`metallb-py controller` / `metallb-py speaker`);
* PodSecurityPolicies (removed in Kubernetes 1.25) are replaced by Pod Security Admission labels
  on the namespace and container securityContexts; the RBAC `use` rules for them are gone;
* readiness probes ask `/readyz` (upstream probed `/metrics`, which says nothing about readiness);
* membership is an authenticated UDP heartbeat on 7946, so there is no `memberlist-tcp` port;
* pod templates also carry `app.kubernetes.io/name` and `app.kubernetes.io/component`, so a
  PodMonitor `jobLabel` of either `app` or `app.kubernetes.io/name` yields `job="metallb"`;
* the Namespace is the first object of `metallb.yaml` (no `namespace.yaml`), so
  `kubectl apply -f manifests/`, which reads a directory's files in name order, creates it before
  anything that lives in it;
* the Prometheus operator objects live in `manifests/prometheus/`, which a non-recursive
  `kubectl apply -f manifests/` does not read (most clusters lack the operator's CRDs), and the
  example config lives in `config-examples/`, so re-applying the install never replaces the
  user's config;
* the controller may write one more ConfigMap, `<config name>-accepted`: the last config it
  accepted (`accepted_config_name`).

One module on purpose (about 640 lines): the objects, the files they are written to and the
shipped copy in `manifests/` are one concern, and must change together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metallb_py import __version__
from metallb_py.addons import alerts
from metallb_py.addons.yamlout import dump_documents
from metallb_py.k8s.objects import Obj

DEFAULT_IMAGE = f"quay.io/metallb-py/metallb-py:v{__version__}"
DEFAULT_NAMESPACE = "metallb-system"
APP = "metallb"
PSA_LEVEL = "privileged"
"""The speaker needs hostNetwork, hostPorts and NET_RAW, which `baseline` forbids."""
INSTALL_FILE = "metallb.yaml"
PROMETHEUS_DIR = "prometheus"
"""Subdirectory of `manifests/` with the objects that need the Prometheus operator's CRDs."""
ACCEPTED_SUFFIX = "-accepted"


@dataclass(frozen=True)
class Probe:
    enabled: bool = True
    failure_threshold: int = 3
    initial_delay_seconds: int = 10
    period_seconds: int = 10
    success_threshold: int = 1
    timeout_seconds: int = 1


@dataclass(frozen=True)
class Component:
    """Per-component knobs, named after the Helm chart's `controller.*` / `speaker.*` values."""

    name: str
    enabled: bool = True
    log_level: str = "info"
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = ""
    service_account: str = ""
    """Defaults to the component name."""
    create_service_account: bool = True
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Added to `kubernetes.io/os: linux`."""
    tolerations: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    priority_class_name: str = ""
    affinity: Mapping[str, Any] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    liveness: Probe = Probe()
    readiness: Probe = Probe()
    runtime_class_name: str = ""
    pod_security_context: Mapping[str, Any] | None = None
    """Replaces the default pod securityContext (controller: nobody, 65534)."""

    @property
    def account(self) -> str:
        return self.service_account or self.name


@dataclass(frozen=True)
class PodMonitor:
    additional_labels: Mapping[str, str] = field(default_factory=dict)
    job_label: str = "app.kubernetes.io/name"
    interval: str = ""
    metric_relabelings: tuple[Mapping[str, Any], ...] = ()
    relabelings: tuple[Mapping[str, Any], ...] = ()
    prometheus_service_account: str = "prometheus-k8s"
    prometheus_namespace: str = "monitoring"


@dataclass(frozen=True)
class InstallOptions:
    namespace: str = DEFAULT_NAMESPACE
    config_name: str = "config"
    config_text: str | None = None
    """Content of the `config` key; None means "do not render the ConfigMap"."""
    rbac: bool = True
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    scrape_annotations: bool = True
    metrics_port: int = 7472
    memberlist: bool = True
    ml_bind_port: int = 7946
    secret_name: str = "memberlist"
    tolerate_master: bool = True
    controller: Component = Component("controller")
    speaker: Component = Component("speaker")
    pod_monitor: PodMonitor | None = None
    prometheus_rule: alerts.RuleOptions | None = None


def accepted_config_name(config_name: str) -> str:
    """The ConfigMap in which the controller keeps the last config it accepted (`config` ->
    `config-accepted`; a Helm-style `metallb` -> `metallb-accepted`). It is not in the
    manifests, so applying them never touches it."""
    return config_name + ACCEPTED_SUFFIX


def _labels(component: str | None = None) -> Obj:
    labels: Obj = {"app": APP}
    if component:
        labels["component"] = component
    return labels


def _pod_labels(component: str) -> Obj:
    return {
        **_labels(component),
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/component": component,
    }


def _meta(name: str, namespace: str | None, component: str | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = _labels(component)
    return meta


def namespace_objects(opts: InstallOptions) -> list[Obj]:
    """The namespace, with Pod Security Admission at `privileged` (see `PSA_LEVEL`)."""
    labels = _labels()
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = PSA_LEVEL
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": opts.namespace, "labels": labels},
        }
    ]


def _rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> Obj:
    rule: Obj = {"apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = names
    rule["verbs"] = verbs
    return rule


def rbac_objects(opts: InstallOptions) -> list[Obj]:
    """Upstream's RBAC minus the PodSecurityPolicy `use` rules, plus the controller's writes of
    the accepted-config ConfigMap. RBAC cannot limit `create` by name (the name is in the body),
    so `create` on configmaps is namespace-wide; `update`/`patch` are limited to that name."""
    ns = opts.namespace
    ctl, spk = opts.controller, opts.speaker
    objs: list[Obj] = []
    cluster_roles = {
        "controller": [
            _rule([""], ["services"], ["get", "list", "watch"]),
            _rule([""], ["services/status"], ["update"]),
            _rule([""], ["events"], ["create", "patch"]),
        ],
        "speaker": [
            _rule([""], ["services", "endpoints", "nodes"], ["get", "list", "watch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], ["get", "list", "watch"]),
            _rule([""], ["events"], ["create", "patch"]),
        ],
    }
    enabled = {"controller": ctl, "speaker": spk}
    for comp, rules in cluster_roles.items():
        if not enabled[comp].enabled:
            continue
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(f"{ns}:{comp}", None),
                "rules": rules,
            }
        )
    roles: list[tuple[str, list[Obj], list[Component]]] = [
        ("config-watcher", [_rule([""], ["configmaps"], ["get", "list", "watch"])], [ctl, spk]),
        ("pod-lister", [_rule([""], ["pods"], ["list"])], [spk]),
        (
            "controller",
            [
                _rule([""], ["secrets"], ["create"]),
                _rule([""], ["secrets"], ["list"], [opts.secret_name]),
                _rule(["apps"], ["deployments"], ["get"], ["controller"]),
                _rule([""], ["configmaps"], ["create"]),
                _rule(
                    [""],
                    ["configmaps"],
                    ["update", "patch"],
                    [accepted_config_name(opts.config_name)],
                ),
            ],
            [ctl],
        ),
    ]
    for name, rules, comps in roles:
        if not any(c.enabled for c in comps):
            continue
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(name, ns),
                "rules": rules,
            }
        )
    for comp in cluster_roles:
        c = enabled[comp]
        if not c.enabled:
            continue
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(f"{ns}:{comp}", None),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{ns}:{comp}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": c.account, "namespace": ns}],
            }
        )
    for name, _rules, comps in roles:
        subjects = [
            {"kind": "ServiceAccount", "name": c.account, "namespace": ns}
            for c in comps
            if c.enabled
        ]
        if not subjects:
            continue
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(name, ns),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": subjects,
            }
        )
    return objs


def _probe(probe: Probe, path: str) -> Obj:
    return {
        "httpGet": {"path": path, "port": "monitoring"},
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _container(c: Component, opts: InstallOptions, env: list[Obj], ports: list[Obj]) -> Obj:
    container: Obj = {"name": c.name, "image": c.image}
    if c.image_pull_policy:
        container["imagePullPolicy"] = c.image_pull_policy
    container["args"] = [
        c.name,
        f"--port={opts.metrics_port}",
        f"--config={opts.config_name}",
        f"--log-level={c.log_level}",
    ]
    container["env"] = env
    container["ports"] = ports
    if c.liveness.enabled:
        container["livenessProbe"] = _probe(c.liveness, "/metrics")
    if c.readiness.enabled:
        container["readinessProbe"] = _probe(c.readiness, "/readyz")
    if c.resources:
        container["resources"] = dict(c.resources)
    return container


def _pod_template(c: Component, opts: InstallOptions, spec: Obj) -> Obj:
    meta: Obj = {}
    annotations: Obj = {}
    if opts.scrape_annotations:
        annotations["prometheus.io/port"] = str(opts.metrics_port)
        annotations["prometheus.io/scrape"] = "true"
    annotations.update(c.pod_annotations)
    if annotations:
        meta["annotations"] = annotations
    meta["labels"] = _pod_labels(c.name)
    pod: Obj = {}
    if opts.image_pull_secrets:
        pod["imagePullSecrets"] = [dict(s) for s in opts.image_pull_secrets]
    pod.update(spec)
    pod["nodeSelector"] = {"kubernetes.io/os": "linux", **c.node_selector}
    pod["serviceAccountName"] = c.account
    if c.affinity:
        pod["affinity"] = dict(c.affinity)
    if c.priority_class_name:
        pod["priorityClassName"] = c.priority_class_name
    if c.runtime_class_name:
        pod["runtimeClassName"] = c.runtime_class_name
    return {"metadata": meta, "spec": pod}


def speaker_daemonset(opts: InstallOptions) -> Obj:
    c = opts.speaker
    ns_env = _field_env("METALLB_NAMESPACE", "metadata.namespace")
    env = [
        _field_env("METALLB_NODE_NAME", "spec.nodeName"),
        _field_env("METALLB_HOST", "status.hostIP"),
        ns_env,
    ]
    ports: list[Obj] = [{"containerPort": opts.metrics_port, "name": "monitoring"}]
    if opts.memberlist:
        env += [
            _field_env("METALLB_ML_BIND_ADDR", "status.podIP"),
            {"name": "METALLB_ML_BIND_PORT", "value": str(opts.ml_bind_port)},
            {"name": "METALLB_ML_LABELS", "value": "app=metallb,component=speaker"},
            {
                "name": "METALLB_ML_SECRET_KEY",
                "valueFrom": {"secretKeyRef": {"name": opts.secret_name, "key": "secretkey"}},
            },
        ]
        ports.append(
            {"containerPort": opts.ml_bind_port, "name": "memberlist-udp", "protocol": "UDP"}
        )
    container = _container(c, opts, env, ports)
    # Raw ARP/NDP sockets need NET_RAW, and a capability only takes effect for uid 0 (the
    # image's default user is unprivileged), so the speaker runs as root with NET_RAW only.
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
    }
    tolerations: list[Obj] = []
    if opts.tolerate_master:
        for key in ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane"):
            tolerations.append({"effect": "NoSchedule", "key": key, "operator": "Exists"})
    tolerations += [dict(t) for t in c.tolerations]
    spec: Obj = {
        "containers": [container],
        "hostNetwork": True,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 2,
    }
    if tolerations:
        spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta("speaker", opts.namespace, "speaker"),
        "spec": {
            "selector": {"matchLabels": _labels("speaker")},
            "template": _pod_template(c, opts, spec),
        },
    }


def controller_deployment(opts: InstallOptions) -> Obj:
    c = opts.controller
    env = [_field_env("METALLB_NAMESPACE", "metadata.namespace")]
    if opts.memberlist and opts.speaker.enabled:
        env += [
            {"name": "METALLB_ML_SECRET_NAME", "value": opts.secret_name},
            {"name": "METALLB_DEPLOYMENT", "value": "controller"},
        ]
    container = _container(
        c, opts, env, [{"containerPort": opts.metrics_port, "name": "monitoring"}]
    )
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    pod_sc: Obj = (
        dict(c.pod_security_context)
        if c.pod_security_context is not None
        else {
            "fsGroup": 65534,
            "runAsGroup": 65534,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    )
    spec: Obj = {
        "containers": [container],
        "securityContext": pod_sc,
        "terminationGracePeriodSeconds": 0,
    }
    if c.tolerations:
        spec["tolerations"] = [dict(t) for t in c.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("controller", opts.namespace, "controller"),
        "spec": {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": _labels("controller")},
            "template": _pod_template(c, opts, spec),
        },
    }


def metallb_objects(opts: InstallOptions) -> list[Obj]:
    """What `metallb.yaml` holds after the Namespace: service accounts, RBAC, the speaker and the
    controller."""
    objs: list[Obj] = []
    for c in (opts.controller, opts.speaker):
        if c.enabled and c.create_service_account:
            meta = _meta(c.account, opts.namespace)
            if c.service_account_annotations:
                meta["annotations"] = dict(c.service_account_annotations)
            objs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    if opts.rbac:
        objs += rbac_objects(opts)
    if opts.speaker.enabled:
        objs.append(speaker_daemonset(opts))
    if opts.controller.enabled:
        objs.append(controller_deployment(opts))
    return objs


def config_map(name: str, namespace: str, text: str) -> Obj:
    """The ConfigMap both components read (data key `config`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"config": text},
    }


def prometheus_operator_objects(opts: InstallOptions) -> list[Obj]:
    """PodMonitors for both components and the Role letting Prometheus find the pods."""
    pm = opts.pod_monitor
    if pm is None:
        return []
    objs: list[Obj] = []
    for comp in ("controller", "speaker"):
        endpoint: Obj = {"port": "monitoring", "path": "/metrics"}
        if pm.interval:
            endpoint["interval"] = pm.interval
        if pm.metric_relabelings:
            endpoint["metricRelabelings"] = [dict(r) for r in pm.metric_relabelings]
        if pm.relabelings:
            endpoint["relabelings"] = [dict(r) for r in pm.relabelings]
        meta = _meta(f"metallb-{comp}", opts.namespace, comp)
        meta["labels"].update(pm.additional_labels)
        objs.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": meta,
                "spec": {
                    "jobLabel": pm.job_label,
                    "selector": {"matchLabels": _labels(comp)},
                    "namespaceSelector": {"matchNames": [opts.namespace]},
                    "podMetricsEndpoints": [endpoint],
                },
            }
        )
    name = pm.prometheus_service_account
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(name, opts.namespace),
            "rules": [_rule([""], ["pods"], ["get", "list", "watch"])],
        }
    )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, opts.namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [
                {"kind": "ServiceAccount", "name": name, "namespace": pm.prometheus_namespace}
            ],
        }
    )
    return objs


def prometheus_rule_objects(opts: InstallOptions) -> list[Obj]:
    if opts.prometheus_rule is None:
        return []
    return [alerts.prometheus_rule(opts.prometheus_rule, opts.namespace)]


@dataclass(frozen=True)
class ManifestFile:
    name: str
    header: str
    objects: tuple[Obj, ...]

    def text(self) -> str:
        return dump_documents(self.objects, self.header)


def _install_header(opts: InstallOptions) -> str:
    accepted = accepted_config_name(opts.config_name)
    where = (
        "config.yaml"
        if opts.config_text is not None
        else "you write it, e.g. from config-examples/"
    )
    lines = [
        "metallb-py: the namespace and everything that runs in it.",
        f"* The Namespace {opts.namespace}, first, so that it exists before the objects in it.",
        f"  Pod Security Admission level `{PSA_LEVEL}`: the speaker needs hostNetwork,",
        "  hostPorts and the NET_RAW capability, which the `baseline` level forbids.",
        "  Keep other workloads out of this namespace.",
        "* Service accounts and RBAC: upstream MetalLB v0.12.1's rules without the",
        "  PodSecurityPolicy `use` rules, plus the controller's writes of the ConfigMap",
        f"  {accepted} (the last config it accepted). RBAC cannot restrict `create`",
        "  by name, so the controller may create any ConfigMap in this namespace;",
        "  `update` and `patch` are limited to that one name.",
        "* The speaker DaemonSet and the controller Deployment. The controller creates",
        "  the memberlist Secret on first start; speakers wait for it.",
        "Not in this file, so applying it again touches neither:",
        f"* the config, ConfigMap {opts.config_name} ({where});",
        f"* ConfigMap {accepted}, which the controller writes.",
    ]
    return "\n".join(lines)


def manifest_files(opts: InstallOptions) -> list[ManifestFile]:
    """The files of an install, in apply order; optional parts only when enabled."""
    files = [
        ManifestFile(
            INSTALL_FILE,
            _install_header(opts),
            tuple(namespace_objects(opts) + metallb_objects(opts)),
        ),
    ]
    if opts.config_text is not None:
        files.append(
            ManifestFile(
                "config.yaml",
                "The configuration both components read (MetalLB v0.12 format, data key `config`).",
                (config_map(opts.config_name, opts.namespace, opts.config_text),),
            )
        )
    if opts.pod_monitor is not None:
        files.append(
            ManifestFile(
                "prometheus-operator.yaml",
                "Prometheus operator PodMonitors for the controller and the speakers, and the\n"
                f"Role that lets Prometheus ({opts.pod_monitor.prometheus_namespace}/"
                f"{opts.pod_monitor.prometheus_service_account}) list the pods.\n"
                "Needs the Prometheus operator's CRDs.",
                tuple(prometheus_operator_objects(opts)),
            )
        )
    if opts.prometheus_rule is not None:
        files.append(
            ManifestFile(
                "prometheus-rules.yaml",
                "Alerts (MetalLB chart v0.12.1's PrometheusRule); see docs/alerts.md.\n"
                "Needs the Prometheus operator's CRDs.",
                tuple(prometheus_rule_objects(opts)),
            )
        )
    return files


SHIPPED = InstallOptions(pod_monitor=PodMonitor(), prometheus_rule=alerts.RuleOptions())
"""What `manifests/` holds: the defaults plus the Prometheus operator objects."""

KUSTOMIZATION = (
    "# kustomize entry point: `kubectl apply -k manifests/` installs metallb.yaml (the same\n"
    "# objects as `kubectl apply -f manifests/`). The file is named `Kustomization` (a name\n"
    "# kustomize reads) rather than kustomization.yaml so that `kubectl apply -f manifests/`\n"
    "# does not try to create a Kustomization object, which no API server serves.\n"
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind: Kustomization\n"
    "resources:\n"
    f"- {INSTALL_FILE}\n"
)


def shipped_path(f: ManifestFile) -> str:
    """Where a file of the shipped set lives, relative to `manifests/`: the objects that need
    the Prometheus operator's CRDs go to `prometheus/`, out of `kubectl apply -f manifests/`."""
    needs_operator = any(o["apiVersion"].startswith("monitoring.coreos.com/") for o in f.objects)
    return f"{PROMETHEUS_DIR}/{f.name}" if needs_operator else f.name


def shipped_files() -> dict[str, str]:
    """Path relative to `manifests/` -> text of the generated part of `manifests/`."""
    files = {shipped_path(f): f.text() for f in manifest_files(SHIPPED)}
    files["Kustomization"] = KUSTOMIZATION
    return files


def write_manifests(directory: Path) -> list[Path]:
    written = []
    for name, text in shipped_files().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
