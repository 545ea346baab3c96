"""Helm chart values (MetalLB chart v0.12.1, charts/metallb/values.yaml) -> install options and
the MetalLB config; Konvoy's addon carries the same values in a string.

Values name the same knobs as the chart, but `render` writes metallb-py's fixed object names
(`controller`, `speaker`, ConfigMap `config`, Secret `memberlist`) rather than release-derived
ones, so the result matches `manifests/` and the flags' defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yaml.nodes import MappingNode, Node

from metallb_py.addons import alerts
from metallb_py.addons.addon import AddonValues, ConfigSource
from metallb_py.addons.manifests import (
    DEFAULT_IMAGE,
    Component,
    InstallOptions,
    PodMonitor,
    Probe,
)
from metallb_py.config.decode import (
    ANY,
    ANY_LIST,
    ANY_MAP,
    BOOL,
    TYPED_INT,
    TYPED_STR,
    List,
    Spec,
    StrMap,
    Struct,
    read,
)
from metallb_py.config.yamlnodes import (
    Path,
    ProblemLog,
    format_path,
    is_null,
    keys_of,
    node_at,
)
from metallb_py.config.yamltree import describe

_LABELS = StrMap(TYPED_STR)
_PROBE = Struct(
    "probe",
    {
        "enabled": BOOL,
        "failureThreshold": TYPED_INT,
        "initialDelaySeconds": TYPED_INT,
        "periodSeconds": TYPED_INT,
        "successThreshold": TYPED_INT,
        "timeoutSeconds": TYPED_INT,
    },
)
_IMAGE = Struct("image", {"repository": TYPED_STR, "tag": TYPED_STR, "pullPolicy": TYPED_STR})
_ACCOUNT = Struct("serviceAccount", {"create": BOOL, "name": TYPED_STR, "annotations": _LABELS})
_COMMON: dict[str, Spec] = {
    "enabled": BOOL,
    "logLevel": TYPED_STR,
    "image": _IMAGE,
    "serviceAccount": _ACCOUNT,
    "resources": ANY_MAP,
    "nodeSelector": _LABELS,
    "tolerations": ANY_LIST,
    "priorityClassName": TYPED_STR,
    "affinity": ANY_MAP,
    "podAnnotations": _LABELS,
    "livenessProbe": _PROBE,
    "readinessProbe": _PROBE,
}
_CONTROLLER = Struct("controller values", {**_COMMON, "securityContext": ANY_MAP})
_SPEAKER = Struct(
    "speaker values",
    {
        **_COMMON,
        "tolerateMaster": BOOL,
        "memberlist": Struct("speaker.memberlist", {"enabled": BOOL, "mlBindPort": TYPED_INT}),
        "secretName": TYPED_STR,
        "runtimeClassName": TYPED_STR,
        "frr": Struct("speaker.frr", {"enabled": BOOL, "logLevel": TYPED_STR, "image": _IMAGE}),
    },
)
_ALERT = Struct("alert", {"enabled": BOOL, "labels": _LABELS})
_PROMETHEUS = Struct(
    "prometheus values",
    {
        "scrapeAnnotations": BOOL,
        "metricsPort": TYPED_INT,
        "serviceAccount": TYPED_STR,
        "namespace": TYPED_STR,
        "podMonitor": Struct(
            "prometheus.podMonitor",
            {
                "enabled": BOOL,
                "additionalLabels": _LABELS,
                "jobLabel": TYPED_STR,
                "interval": TYPED_STR,
                "metricRelabelings": ANY_LIST,
                "relabelings": ANY_LIST,
            },
        ),
        "prometheusRule": Struct(
            "prometheus.prometheusRule",
            {
                "enabled": BOOL,
                "additionalLabels": _LABELS,
                "staleConfig": _ALERT,
                "configNotLoaded": _ALERT,
                "addressPoolExhausted": _ALERT,
                "addressPoolUsage": Struct(
                    "addressPoolUsage",
                    {
                        "enabled": BOOL,
                        "thresholds": List(
                            Struct(
                                "threshold",
                                {"percent": TYPED_INT, "labels": _LABELS},
                                required=("percent",),
                            )
                        ),
                    },
                ),
                "bgpSessionDown": _ALERT,
                "extraAlerts": ANY_LIST,
            },
        ),
    },
)
HELM_VALUES = Struct(
    "MetalLB chart values",
    {
        "imagePullSecrets": ANY_LIST,
        "nameOverride": TYPED_STR,
        "fullnameOverride": TYPED_STR,
        "existingConfigMap": TYPED_STR,
        "configInline": ANY,
        "rbac": Struct("rbac", {"create": BOOL}),
        "psp": Struct("psp", {"create": BOOL}),
        "prometheus": _PROMETHEUS,
        "controller": _CONTROLLER,
        "speaker": _SPEAKER,
    },
)

LOG_LEVELS = ("all", "debug", "info", "warn", "error", "none")
UPSTREAM_IMAGES = ("metallb/controller", "metallb/speaker")
JOB_LABELS = ("app", "app.kubernetes.io/name")
"""Pod labels whose value is `metallb` on every metallb-py pod (the alerts' job)."""


class _ValueChecks:
    """Semantic checks of read values; problems are reported at paths relative to the root."""

    def __init__(self, root: Node, path: Path, problems: ProblemLog) -> None:
        self.root = root
        self.path = path
        self.problems = problems

    def error(self, rel: Path, reason: str, value: Any = None) -> None:
        self.problems.add((*self.path, *rel), reason, value, node_at(self.root, rel))


def _probe(v: Mapping[str, Any] | None) -> Probe:
    v = v or {}
    d = Probe()
    return Probe(
        enabled=v.get("enabled", d.enabled),
        failure_threshold=v.get("failureThreshold", d.failure_threshold),
        initial_delay_seconds=v.get("initialDelaySeconds", d.initial_delay_seconds),
        period_seconds=v.get("periodSeconds", d.period_seconds),
        success_threshold=v.get("successThreshold", d.success_threshold),
        timeout_seconds=v.get("timeoutSeconds", d.timeout_seconds),
    )


def _image(v: Mapping[str, Any], rel: Path, checks: _ValueChecks) -> str:
    repo = v.get("repository", "")
    tag = v.get("tag", "")
    default_repo, _, default_tag = DEFAULT_IMAGE.rpartition(":")
    if repo and any(repo.endswith(u) for u in UPSTREAM_IMAGES):
        checks.error(
            (*rel, "repository"),
            f"{repo} is upstream MetalLB's Go image, which cannot run metallb-py; leave "
            f"image.repository unset (default {default_repo}) or name a metallb-py image",
            repo,
        )
    return f"{repo or default_repo}:{tag or default_tag}"


def _component(name: str, v: Mapping[str, Any], checks: _ValueChecks) -> Component:
    level = v.get("logLevel", "info")
    if level not in LOG_LEVELS:
        checks.error(
            (name, "logLevel"),
            f"unknown log level {level!r}: use one of {', '.join(LOG_LEVELS)}",
            level,
        )
    account = v.get("serviceAccount", {})
    create = account.get("create", True)
    return Component(
        name=name,
        enabled=v.get("enabled", True),
        log_level=level,
        image=_image(v.get("image", {}), (name, "image"), checks),
        image_pull_policy=v.get("image", {}).get("pullPolicy", ""),
        service_account=account.get("name", "") or ("" if create else "default"),
        create_service_account=create,
        service_account_annotations=account.get("annotations", {}),
        node_selector=v.get("nodeSelector", {}),
        tolerations=tuple(v.get("tolerations", ())),
        resources=v.get("resources", {}),
        priority_class_name=v.get("priorityClassName", ""),
        affinity=v.get("affinity", {}),
        pod_annotations=v.get("podAnnotations", {}),
        liveness=_probe(v.get("livenessProbe")),
        readiness=_probe(v.get("readinessProbe")),
        runtime_class_name=v.get("runtimeClassName", ""),
        pod_security_context=v.get("securityContext"),
    )


def _alert_labels(
    v: Mapping[str, Any], key: str, default: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """Helm merges user maps over the chart's defaults: labels add to `severity`."""
    entry = v.get(key, {})
    if not entry.get("enabled", True):
        return None
    return {**(default or {}), **entry.get("labels", {})}


def _rule_options(v: Mapping[str, Any]) -> alerts.RuleOptions:
    d = alerts.RuleOptions()
    usage = v.get("addressPoolUsage", {})
    thresholds: tuple[alerts.Threshold, ...] = ()
    if usage.get("enabled", True):
        given = usage.get("thresholds")
        thresholds = (
            d.address_pool_usage
            if given is None
            else tuple(
                alerts.Threshold(t["percent"], t.get("labels", {}))
                for t in given
                if "percent" in t  # one without is already reported
            )
        )
    return alerts.RuleOptions(
        additional_labels=v.get("additionalLabels", {}),
        stale_config=_alert_labels(v, "staleConfig", d.stale_config),
        config_not_loaded=_alert_labels(v, "configNotLoaded", d.config_not_loaded),
        address_pool_exhausted=_alert_labels(v, "addressPoolExhausted", d.address_pool_exhausted),
        address_pool_usage=thresholds,
        bgp_session_down=_alert_labels(v, "bgpSessionDown", d.bgp_session_down),
        extra_alerts=tuple(v.get("extraAlerts", ())),
    )


def _pod_monitor(
    prom: Mapping[str, Any], checks: _ValueChecks, notes: list[str]
) -> PodMonitor | None:
    pm = prom.get("podMonitor", {})
    if not pm.get("enabled", False):
        return None
    job_label = pm.get("jobLabel", "app.kubernetes.io/name")
    if job_label not in JOB_LABELS:
        checks.error(
            ("prometheus", "podMonitor", "jobLabel"),
            f"{job_label!r} is not a label with value 'metallb' on the metallb-py pods, so "
            f'the alerts\' job="metallb" would match nothing: use one of '
            f"{', '.join(JOB_LABELS)}",
            job_label,
        )
    defaults = PodMonitor()
    for key, default in (
        ("serviceAccount", defaults.prometheus_service_account),
        ("namespace", defaults.prometheus_namespace),
    ):
        if not prom.get(key):
            notes.append(
                f"{format_path((*checks.path, 'prometheus', key))} is not set (the chart requires"
                f" it with podMonitor.enabled); using {default!r}"
            )
    return PodMonitor(
        additional_labels=pm.get("additionalLabels", {}),
        job_label=job_label,
        interval=pm.get("interval", ""),
        metric_relabelings=tuple(pm.get("metricRelabelings", ())),
        relabelings=tuple(pm.get("relabelings", ())),
        prometheus_service_account=prom.get("serviceAccount")
        or defaults.prometheus_service_account,
        prometheus_namespace=prom.get("namespace") or defaults.prometheus_namespace,
    )


def read_helm(
    root: Node | None, path: Path = (), line_offset: int = 0, kind: str = "helm"
) -> AddonValues:
    """MetalLB chart values (what `helm install -f values.yaml` takes); ConfigError listing
    every problem."""
    problems = ProblemLog(line_offset)
    if root is None or is_null(root):
        root = MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, MappingNode):
        problems.add(path, f"chart values must be a mapping, got {describe(root)}", None, root)
        problems.check()
    assert isinstance(root, MappingNode)
    keys = keys_of(root)
    if keys and not set(keys) & set(HELM_VALUES.fields):
        problems.add(
            path,
            f"these are not MetalLB chart values (found {', '.join(keys)}; none is a chart key "
            "such as configInline, controller, speaker or prometheus): values for another addon?",
            None,
            root,
        )
        problems.check()
    v: dict[str, Any] = read(root, HELM_VALUES, path, problems) or {}
    checks = _ValueChecks(root, path, problems)
    notes: list[str] = []
    for key in ("nameOverride", "fullnameOverride"):
        if v.get(key):
            checks.error(
                (key,),
                "not supported: metallb-py renders fixed object names (controller, speaker, "
                "config, memberlist) that its components' defaults expect",
                v[key],
            )
    if v.get("psp", {}).get("create") is True:
        notes.append(
            f"{format_path((*path, 'psp', 'create'))}: PodSecurityPolicies are not rendered "
            "(removed in Kubernetes 1.25); the namespace carries Pod Security Admission labels"
        )
    speaker_v = v.get("speaker", {})
    if speaker_v.get("frr", {}).get("enabled", False):
        checks.error(
            ("speaker", "frr", "enabled"),
            "FRR mode is not supported by metallb-py's speaker; it speaks BGP itself (native mode)",
            True,
        )
    controller = _component("controller", v.get("controller", {}), checks)
    speaker = _component("speaker", speaker_v, checks)
    prom = v.get("prometheus", {})
    port = prom.get("metricsPort", 7472)
    if not 1 <= port <= 65535:
        checks.error(("prometheus", "metricsPort"), f"{port} is not a TCP port (1-65535)", port)
    pod_monitor = _pod_monitor(prom, checks, notes)
    rule = prom.get("prometheusRule", {})
    rule_options = _rule_options(rule) if rule.get("enabled", False) else None
    memberlist = speaker_v.get("memberlist", {})

    config: dict[str, Any] | None = None
    source: ConfigSource | None = None
    config_name = "config"
    inline_node = node_at(root, ("configInline",)) if "configInline" in v else None
    if inline_node is not None and inline_node is not root:
        if not isinstance(inline_node, MappingNode):
            checks.error(
                ("configInline",),
                f"configInline must be a mapping (the chart renders it with toYaml), got "
                f"{describe(inline_node)}: write the config as YAML under configInline",
            )
        elif inline_node.value:
            config = v["configInline"]
            source = ConfigSource(inline_node, (*path, "configInline"), line_offset)
    if config is None:
        config_name = v.get("existingConfigMap") or "config"
        notes.append(
            f"{format_path((*path, 'configInline'))} is empty: no ConfigMap is rendered; create "
            f"ConfigMap {config_name!r} (data key 'config') yourself"
        )
    problems.check()
    options = InstallOptions(
        config_name=config_name,
        rbac=v.get("rbac", {}).get("create", True),
        image_pull_secrets=tuple(v.get("imagePullSecrets", ())),
        scrape_annotations=prom.get("scrapeAnnotations", False),
        metrics_port=port,
        memberlist=memberlist.get("enabled", True),
        ml_bind_port=memberlist.get("mlBindPort", 7946),
        secret_name=speaker_v.get("secretName", "memberlist"),
        tolerate_master=speaker_v.get("tolerateMaster", True),
        controller=controller,
        speaker=speaker,
        pod_monitor=pod_monitor,
        prometheus_rule=rule_options,
    )
    return AddonValues(kind, options, config, source, tuple(notes))
