"""Addon values -> install options and MetalLB config: Helm chart values (MetalLB chart v0.12.1),
Konvoy `cluster.yaml` (the `metallb` addon's `values` string) and Kontena Pharos values
(`kontena-network-lb:` with underscore keys).

Values name the same knobs as the chart, but `render` writes metallb-py's fixed object names
(`controller`, `speaker`, ConfigMap `config`, Secret `memberlist`) rather than release-derived
ones, so the result matches `manifests/` and the flags' defaults.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from metallb_py.addons import alerts
from metallb_py.addons.manifests import (
    DEFAULT_IMAGE,
    Component,
    InstallOptions,
    PodMonitor,
    Probe,
)
from metallb_py.addons.schema import (
    ANY,
    ANY_LIST,
    ANY_MAP,
    BOOL,
    INT,
    STR,
    AnyData,
    Fields,
    ListOf,
    Reader,
    Spec,
    StrMap,
)
from metallb_py.addons.yamlio import (
    Path,
    dump,
    is_null,
    load_documents,
    mapping_pairs,
    node_at,
    problem,
    to_python,
)
from metallb_py.config.decode import format_path
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.model import BgpType
from metallb_py.config.yamltree import classify, describe, line_of, mark_line

# --- Helm chart values (charts/metallb/values.yaml at v0.12.1) ---------------------------

_PROBE = Fields(
    "probe",
    {
        "enabled": BOOL,
        "failureThreshold": INT,
        "initialDelaySeconds": INT,
        "periodSeconds": INT,
        "successThreshold": INT,
        "timeoutSeconds": INT,
    },
)
_IMAGE = Fields("image", {"repository": STR, "tag": STR, "pullPolicy": STR})
_ACCOUNT = Fields("serviceAccount", {"create": BOOL, "name": STR, "annotations": StrMap()})
_COMMON: dict[str, Spec] = {
    "enabled": BOOL,
    "logLevel": STR,
    "image": _IMAGE,
    "serviceAccount": _ACCOUNT,
    "resources": ANY_MAP,
    "nodeSelector": StrMap(),
    "tolerations": ANY_LIST,
    "priorityClassName": STR,
    "affinity": ANY_MAP,
    "podAnnotations": StrMap(),
    "livenessProbe": _PROBE,
    "readinessProbe": _PROBE,
}
_CONTROLLER = Fields("controller values", {**_COMMON, "securityContext": ANY_MAP})
_SPEAKER = Fields(
    "speaker values",
    {
        **_COMMON,
        "tolerateMaster": BOOL,
        "memberlist": Fields("speaker.memberlist", {"enabled": BOOL, "mlBindPort": INT}),
        "secretName": STR,
        "runtimeClassName": STR,
        "frr": Fields("speaker.frr", {"enabled": BOOL, "logLevel": STR, "image": _IMAGE}),
    },
)
_ALERT = Fields("alert", {"enabled": BOOL, "labels": StrMap()})
_PROMETHEUS = Fields(
    "prometheus values",
    {
        "scrapeAnnotations": BOOL,
        "metricsPort": INT,
        "serviceAccount": STR,
        "namespace": STR,
        "podMonitor": Fields(
            "prometheus.podMonitor",
            {
                "enabled": BOOL,
                "additionalLabels": StrMap(),
                "jobLabel": STR,
                "interval": STR,
                "metricRelabelings": ANY_LIST,
                "relabelings": ANY_LIST,
            },
        ),
        "prometheusRule": Fields(
            "prometheus.prometheusRule",
            {
                "enabled": BOOL,
                "additionalLabels": StrMap(),
                "staleConfig": _ALERT,
                "configNotLoaded": _ALERT,
                "addressPoolExhausted": _ALERT,
                "addressPoolUsage": Fields(
                    "addressPoolUsage",
                    {
                        "enabled": BOOL,
                        "thresholds": ListOf(
                            Fields("threshold", {"percent": INT, "labels": StrMap()}, ("percent",))
                        ),
                    },
                ),
                "bgpSessionDown": _ALERT,
                "extraAlerts": ANY_LIST,
            },
        ),
    },
)
HELM_VALUES = Fields(
    "MetalLB chart values",
    {
        "imagePullSecrets": ANY_LIST,
        "nameOverride": STR,
        "fullnameOverride": STR,
        "existingConfigMap": STR,
        "configInline": ANY,
        "rbac": Fields("rbac", {"create": BOOL}),
        "psp": Fields("psp", {"create": BOOL}),
        "prometheus": _PROMETHEUS,
        "controller": _CONTROLLER,
        "speaker": _SPEAKER,
    },
)

LOG_LEVELS = ("all", "debug", "info", "warn", "error", "none")
UPSTREAM_IMAGES = ("metallb/controller", "metallb/speaker")
JOB_LABELS = ("app", "app.kubernetes.io/name")
"""Pod labels whose value is `metallb` on every metallb-py pod (the alerts' job)."""


@dataclass(frozen=True)
class ConfigSource:
    """Where the MetalLB config came from, so parser problems point into the user's file."""

    node: Node
    path: Path
    line_offset: int = 0
    key_matches: Callable[[str, str], bool] = lambda user, config: user == config


@dataclass(frozen=True)
class AddonValues:
    kind: str
    """`helm`, `konvoy` or `kontena`."""
    options: InstallOptions
    config: dict[str, Any] | None
    """The MetalLB v0.12 config (kebab-case keys) or None when the values carry none."""
    source: ConfigSource | None
    notes: tuple[str, ...] = ()


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


Err = Callable[[Path, str, Any], None]
"""Reports a problem at a path relative to the values' root."""


def _image(v: Mapping[str, Any], rel: Path, err: Err) -> str:
    repo = v.get("repository", "")
    tag = v.get("tag", "")
    default_repo, _, default_tag = DEFAULT_IMAGE.rpartition(":")
    if repo and any(repo.endswith(u) for u in UPSTREAM_IMAGES):
        err(
            (*rel, "repository"),
            f"{repo} is upstream MetalLB's Go image, which cannot run metallb-py; leave "
            f"image.repository unset (default {default_repo}) or name a metallb-py image",
            repo,
        )
    return f"{repo or default_repo}:{tag or default_tag}"


def _component(name: str, v: Mapping[str, Any], err: Err) -> Component:
    level = v.get("logLevel", "info")
    if level not in LOG_LEVELS:
        err(
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
        image=_image(v.get("image", {}), (name, "image"), err),
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
            else tuple(alerts.Threshold(t["percent"], t.get("labels", {})) for t in given)
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


def read_helm(
    root: Node | None, path: Path = (), line_offset: int = 0, kind: str = "helm"
) -> AddonValues:
    """MetalLB chart values (what `helm install -f values.yaml` takes)."""
    r = Reader(line_offset)
    if root is None or is_null(root):
        root = MappingNode("tag:yaml.org,2002:map", [])
    if not isinstance(root, MappingNode):
        r.error(path, f"chart values must be a mapping, got {describe(root)}", root)
        r.check()
    assert isinstance(root, MappingNode)
    keys = [str(k.value) for k, _ in mapping_pairs(root) if isinstance(k, ScalarNode)]
    if keys and not set(keys) & set(HELM_VALUES.fields):
        r.error(
            path,
            f"these are not MetalLB chart values (found {', '.join(keys)}; none is a chart key "
            "such as configInline, controller, speaker or prometheus): values for another addon?",
            root,
        )
        r.check()
    v: dict[str, Any] = r.read(root, HELM_VALUES, path) or {}
    values_root = root

    def err(rel: Path, reason: str, value: Any = None) -> None:
        r.error((*path, *rel), reason, node_at(values_root, rel), value)

    notes: list[str] = []
    for key in ("nameOverride", "fullnameOverride"):
        if v.get(key):
            err(
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
        err(
            ("speaker", "frr", "enabled"),
            "FRR mode is not supported by metallb-py's speaker; it speaks BGP itself (native mode)",
            True,
        )
    controller = _component("controller", v.get("controller", {}), err)
    speaker = _component("speaker", speaker_v, err)
    prom = v.get("prometheus", {})
    port = prom.get("metricsPort", 7472)
    if not 1 <= port <= 65535:
        err(("prometheus", "metricsPort"), f"{port} is not a TCP port (1-65535)", port)
    pod_monitor = None
    pm = prom.get("podMonitor", {})
    if pm.get("enabled", False):
        job_label = pm.get("jobLabel", "app.kubernetes.io/name")
        if job_label not in JOB_LABELS:
            err(
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
                    f"{format_path((*path, 'prometheus', key))} is not set (the chart requires it "
                    f"with podMonitor.enabled); using {default!r}"
                )
        pod_monitor = PodMonitor(
            additional_labels=pm.get("additionalLabels", {}),
            job_label=job_label,
            interval=pm.get("interval", ""),
            metric_relabelings=tuple(pm.get("metricRelabelings", ())),
            relabelings=tuple(pm.get("relabelings", ())),
            prometheus_service_account=prom.get("serviceAccount")
            or defaults.prometheus_service_account,
            prometheus_namespace=prom.get("namespace") or defaults.prometheus_namespace,
        )
    rule = prom.get("prometheusRule", {})
    rule_options = _rule_options(rule) if rule.get("enabled", False) else None
    memberlist = speaker_v.get("memberlist", {})

    config: dict[str, Any] | None = None
    source: ConfigSource | None = None
    config_name = "config"
    inline_node = node_at(root, ("configInline",)) if "configInline" in v else None
    if inline_node is not None and inline_node is not root:
        if not isinstance(inline_node, MappingNode):
            err(
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
    r.check()
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


# --- Konvoy cluster.yaml --------------------------------------------------------------

KONVOY_API_VERSIONS = ("konvoy.mesosphere.io/v1beta1", "konvoy.mesosphere.io/v1beta2")


def _str_at(node: Node | None) -> str | None:
    if isinstance(node, ScalarNode) and not is_null(node):
        return str(classify(node).text)
    return None


def _get(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in mapping_pairs(node):
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _konvoy_subnets(
    spec: Node | None, r: Reader
) -> dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`spec.kubernetes.networking.{podSubnet,serviceSubnet}`, when given."""
    networking = _get(_get(spec, "kubernetes"), "networking")
    out: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
    for key in ("podSubnet", "serviceSubnet"):
        node = _get(networking, key)
        text = _str_at(node)
        if text is None:
            continue
        try:
            out[f"spec.kubernetes.networking.{key}"] = ipaddress.ip_network(text, strict=False)
        except ValueError:
            r.error(("spec", "kubernetes", "networking", key), f"not a CIDR: {text!r}", node, text)
    return out


def read_konvoy(docs: list[Node | None]) -> AddonValues:
    """The `metallb` addon of a Konvoy ClusterConfiguration (other documents are skipped)."""
    r = Reader()
    candidates = []
    for i, doc in enumerate(docs):
        kind = _str_at(_get(doc, "kind"))
        if kind == "ClusterConfiguration":
            candidates.append((i, doc))
    if not candidates:
        kinds = [(_str_at(_get(d, "kind")) or "?") for d in docs if d is not None]
        raise ConfigError(
            [
                Problem(
                    "kind",
                    "no Konvoy document of kind ClusterConfiguration found"
                    + (f" (found: {', '.join(kinds)})" if kinds else ""),
                )
            ]
        )
    if len(candidates) > 1:
        raise ConfigError(
            [
                Problem(
                    "kind",
                    "more than one ClusterConfiguration document",
                    None,
                    line_of(candidates[1][1]),
                )
            ]
        )
    _i, doc = candidates[0]
    assert doc is not None
    api = _str_at(_get(doc, "apiVersion"))
    if api not in KONVOY_API_VERSIONS:
        r.error(
            ("apiVersion",),
            f"expected one of {', '.join(KONVOY_API_VERSIONS)} for a Konvoy ClusterConfiguration, "
            f"got {api!r}",
            _get(doc, "apiVersion") or doc,
            api,
        )
        r.check()
    spec = _get(doc, "spec")
    addons = _get(spec, "addons")
    lists: list[tuple[Path, Node]] = []
    if isinstance(addons, MappingNode):
        lst = _get(addons, "addonsList")
        if lst is not None:
            lists.append((("spec", "addons", "addonsList"), lst))
    elif addons is not None and hasattr(addons, "value") and isinstance(addons.value, list):
        for i, repo in enumerate(addons.value):
            lst = _get(repo, "addonsList")
            if lst is not None:
                lists.append((("spec", "addons", i, "addonsList"), lst))
    found: list[str] = []
    match: tuple[Path, Node] | None = None
    for base, lst in lists:
        for j, addon in enumerate(getattr(lst, "value", []) or []):
            name = _str_at(_get(addon, "name"))
            found.append(name or "?")
            if name == "metallb":
                match = ((*base, j), addon)
    if match is None:
        r.error(
            ("spec", "addons"),
            "no addon named 'metallb' in spec.addons[].addonsList"
            + (f" (found: {', '.join(found)})" if found else ""),
            addons or spec or doc,
        )
        r.check()
    assert match is not None
    addon_path, addon = match
    addon_fields = r.read(
        addon,
        Fields("Konvoy addon", {"name": STR, "enabled": BOOL, "values": STR}, ("name",)),
        addon_path,
    )
    r.check()
    if addon_fields.get("enabled") is False:
        r.error(
            (*addon_path, "enabled"),
            "the metallb addon is disabled (enabled: false): nothing to install",
            _get(addon, "enabled"),
        )
        r.check()
    values_node = _get(addon, "values")
    values_path = (*addon_path, "values")
    inner: Node | None = None
    offset = 0
    if values_node is not None and not is_null(values_node):
        assert isinstance(values_node, ScalarNode)
        # A block scalar's text starts on the line after the `values: |` indicator.
        offset = mark_line(values_node.start_mark) - (0 if values_node.style in ("|", ">") else 1)
        docs_inner = load_documents(str(values_node.value), values_path, offset)
        if len(docs_inner) > 1:
            r.error(values_path, "the values string holds more than one YAML document", values_node)
            r.check()
        inner = docs_inner[0] if docs_inner else None
    result = read_helm(inner, values_path, offset, kind="konvoy")
    subnets = _konvoy_subnets(spec, r)
    r.check()
    if result.config is not None and subnets:
        _check_overlap(result, subnets)
    return result


def _check_overlap(
    result: AddonValues, subnets: Mapping[str, ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> None:
    """Konvoy's own rule: the MetalLB range must not overlap podSubnet or serviceSubnet."""
    from metallb_py.config.addresses import AddressError, parse_address_entry

    assert result.config is not None and result.source is not None
    problems = []
    for i, pool in enumerate(result.config.get("address-pools") or []):
        if not isinstance(pool, dict):
            continue
        for j, entry in enumerate(pool.get("addresses") or []):
            try:
                cidrs = parse_address_entry(str(entry)).cidrs
            except AddressError:
                continue  # reported by the config check
            for where, subnet in subnets.items():
                if any(c.version == subnet.version and c.overlaps(subnet) for c in cidrs):
                    path = (*result.source.path, "address-pools", i, "addresses", j)
                    node = node_at(result.source.node, ("address-pools", i, "addresses", j))
                    problems.append(
                        problem(
                            path,
                            f"{entry} overlaps {where} {subnet}: MetalLB would hand out "
                            "addresses the cluster already routes internally",
                            node,
                            entry,
                            result.source.line_offset,
                        )
                    )
    if problems:
        raise ConfigError(problems)


# --- Kontena Pharos values --------------------------------------------------------------

KONTENA_KEY = "kontena-network-lb"
_KONTENA = Fields(
    f"{KONTENA_KEY} values",
    {
        "enabled": BOOL,
        "node_selector": StrMap(),
        "tolerations": ANY_LIST,
        "address_pools": AnyData(),
        "peers": AnyData(),
        "bgp_communities": AnyData(),
    },
)
_LABEL_MAPS = {"match-labels"}
"""Config keys whose mapping keys are label names, never translated."""


def kebab(key: str) -> str:
    return key.replace("_", "-")


def _kontena_keys_match(user: str, config: str) -> bool:
    return kebab(user) == config


def _translate(node: Node, path: Path, r: Reader, label_map: bool = False) -> Any:
    """Kontena's underscore keys (`peer_address`) to MetalLB's kebab-case (`peer-address`)."""
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for k, v in mapping_pairs(node):
            if not isinstance(k, ScalarNode):
                r.error(path, "mapping keys must be strings", k)
                continue
            user = str(k.value)
            key = user if label_map else kebab(user)
            if key in out:
                r.error(
                    (*path, user),
                    f"{user!r} repeats {spelled[key]!r} (underscore and dash spellings are the "
                    "same key)",
                    k,
                    user,
                )
                continue
            spelled[key] = user
            out[key] = _translate(v, (*path, user), r, not label_map and key in _LABEL_MAPS)
        return out
    if isinstance(node, ScalarNode) or node is None:
        return to_python(node, path, r.problems, r.line_offset)
    return [_translate(n, (*path, i), r) for i, n in enumerate(node.value)]


def read_kontena(root: Node | None) -> AddonValues:
    """`kontena-network-lb:` values, at the top level or under `addons:` of a cluster.yml."""
    r = Reader()
    if not isinstance(root, MappingNode):
        r.error(
            (),
            f"Kontena values must be a mapping, got {describe(root) if root else 'nothing'}",
            root,
        )
        r.check()
    assert isinstance(root, MappingNode)
    base: Path = ()
    holder: MappingNode = root
    addons = _get(root, "addons")
    if _get(root, KONTENA_KEY) is None and isinstance(addons, MappingNode):
        base, holder = ("addons",), addons
    block = _get(holder, KONTENA_KEY)
    if block is None:
        keys = [str(k.value) for k, _ in mapping_pairs(holder) if isinstance(k, ScalarNode)]
        r.error(
            base,
            f"no '{KONTENA_KEY}' block: these are values for another addon "
            f"(found {', '.join(keys) or 'nothing'})",
            holder,
        )
        r.check()
    assert block is not None
    path = (*base, KONTENA_KEY)
    v = r.read(block, _KONTENA, path) or {}
    r.check()
    if v.get("enabled") is False:
        r.error(
            (*path, "enabled"),
            "the addon is disabled (enabled: false): nothing to install",
            _get(block, "enabled"),
        )
        r.check()
    config: dict[str, Any] = {}
    for user_key in ("peers", "bgp_communities", "address_pools"):
        node = _get(block, user_key)
        if node is not None and not is_null(node):
            config[kebab(user_key)] = _translate(node, (*path, user_key), r)
    r.check()
    speaker = Component(
        "speaker",
        node_selector=v.get("node_selector", {}),
        tolerations=tuple(v.get("tolerations", ())),
    )
    options = InstallOptions(speaker=speaker)
    source = ConfigSource(block, path, 0, _kontena_keys_match)
    return AddonValues("kontena", options, config or None, source if config else None)


# --- detection and the config check -------------------------------------------------------

FORMATS = ("helm", "konvoy", "kontena")


def detect(docs: list[Node | None]) -> str:
    """Which addon format a values file is; wrong kinds are errors naming what was found."""
    first = next((d for d in docs if d is not None), None)
    if first is None:
        return "helm"
    if not isinstance(first, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"addon values must be a YAML mapping, got {describe(first)}",
                    None,
                    line_of(first),
                )
            ]
        )
    if any(_str_at(_get(d, "kind")) == "ClusterConfiguration" for d in docs):
        return "konvoy"
    if _get(first, KONTENA_KEY) is not None or _get(_get(first, "addons"), KONTENA_KEY) is not None:
        return "kontena"
    kind = _str_at(_get(first, "kind"))
    api = _str_at(_get(first, "apiVersion"))
    if kind is not None or api is not None:
        hint = (
            " (a MetalLB config: use `metallb-py config convert`)"
            if kind == "ConfigMap" or (api or "").startswith("metallb.io/")
            else ""
        )
        raise ConfigError(
            [
                Problem(
                    "kind",
                    f"expected addon values (Helm values, a Konvoy ClusterConfiguration or "
                    f"Kontena values), got {api or '?'} {kind or '?'}{hint}",
                    kind,
                    line_of(_get(first, "kind") or first),
                )
            ]
        )
    return "helm"


def read_values(text: str, fmt: str = "auto") -> AddonValues:
    """Addon values of format `fmt` (or detected); values of another format are an error."""
    docs = load_documents(text)
    if fmt == "auto":
        fmt = found = detect(docs)
    else:
        try:
            found = detect(docs)
        except ConfigError:
            found = fmt  # the format's own reader explains what is wrong
    if found not in (fmt, "helm"):
        raise ConfigError(
            [Problem("", f"these look like {found} values, not {fmt} values: use {found}")]
        )
    if fmt == "konvoy":
        return read_konvoy(docs)
    real = [d for d in docs if d is not None]
    if len(real) > 1:
        raise ConfigError(
            [Problem("", f"expected one YAML document of {fmt} values, found {len(real)}")]
        )
    root = real[0] if real else None
    if fmt == "kontena":
        return read_kontena(root)
    if root is not None and not isinstance(root, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"Helm values must be a YAML mapping, got {describe(root)}",
                    None,
                    line_of(root),
                )
            ]
        )
    return read_helm(root)


_PATH_PART = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def split_path(text: str) -> Path:
    """Inverse of `format_path` (`a.b[0]["x.y"]` -> ("a", "b", 0, "x.y"))."""
    import json

    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if m is None:
            break
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return tuple(parts)


def locate(source: ConfigSource, config_path: Path) -> tuple[Path, Node | None]:
    """A config path (kebab keys) as the user wrote it, and its node for the line number."""
    node: Node | None = source.node
    user: list[str | int] = []
    for part in config_path:
        nxt: Node | None = None
        spelled: str | int = part
        if isinstance(node, MappingNode) and isinstance(part, str):
            for k, v in mapping_pairs(node):
                if isinstance(k, ScalarNode) and source.key_matches(str(k.value), part):
                    nxt, spelled = v, str(k.value)
                    break
        elif (
            node is not None
            and isinstance(part, int)
            and isinstance(node.value, list)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
        user.append(spelled)
        if nxt is not None:
            node = nxt
    return (*source.path, *user), node


def config_text(values: AddonValues, bgp_type: BgpType = BgpType.NATIVE) -> str | None:
    """The `config` ConfigMap text, checked by the config parser; problems point into the
    values file (field path as the user spelled it, line in that file)."""
    if values.config is None:
        return None
    text = dump(values.config)
    check_config_text(text, bgp_type, values.source)
    return text


def check_config_text(text: str, bgp_type: BgpType, source: ConfigSource | None) -> None:
    from metallb_py.config import parse_config

    try:
        parse_config(text, bgp_type)
    except ConfigError as exc:
        if source is None:
            raise
        problems = []
        for p in exc.problems:
            path, node = locate(source, split_path(p.path))
            line = mark_line(node.start_mark) + source.line_offset if node is not None else None
            problems.append(Problem(format_path(path), p.reason, p.value, line))
        raise ConfigError(problems) from None


def with_config(values: AddonValues, bgp_type: BgpType = BgpType.NATIVE) -> InstallOptions:
    """Install options with the checked config text filled in."""
    return replace(values.options, config_text=config_text(values, bgp_type))
