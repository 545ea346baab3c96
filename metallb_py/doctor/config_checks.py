"""Checks of the config: the live ConfigMap judged as the controller judges it, whether it is
the one in force (the accepted-config store, the controller's events), and the controller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metallb_py.config import BgpType, Config
from metallb_py.doctor.view import (
    CONFIG_EVENT_REASONS,
    CONTROLLER_COMPONENT,
    ClusterView,
    Finding,
    Severity,
    env_of,
    newest,
    pod_fix,
    pod_ready,
    pod_state,
)
from metallb_py.k8s import accepted
from metallb_py.k8s.configmap import CONFIG_KEY, load_configmap
from metallb_py.k8s.objects import Obj, name_of, value_at


def unread(view: ClusterView, what: str) -> bool:
    """True when `what` could not be read (so "missing" would be a guess, not a finding)."""
    return any(u.startswith(what + ":") for u in view.unreadable)


@dataclass(frozen=True)
class _Config:
    config: Config | None
    finding: Finding | None


def _bgp_type(view: ClusterView) -> BgpType:
    env = env_of(view.speaker_daemonset, "METALLB_BGP_TYPE")
    value = (env or {}).get("value") or "native"
    return BgpType.FRR if value == "frr" else BgpType.NATIVE


def check_config(view: ClusterView) -> _Config:
    """The live ConfigMap judged exactly as the controller judges it (`load_configmap`)."""
    where = f"{view.namespace}/{view.config_name}"
    if view.configmap is None and unread(view, f"ConfigMap {where}"):
        return _Config(None, None)
    load = load_configmap(view.configmap, _bgp_type(view))
    if load.missing:
        return _Config(
            None,
            Finding(
                "config",
                f"ConfigMap {where} does not exist, so MetalLB has no address pools and "
                "allocates nothing",
                "create it from an example in config-examples/ (docs/install.md) with addresses "
                "of your network: metallb-py config check config.yaml && kubectl apply -f "
                "config.yaml",
            ),
        )
    if load.config is None and _has_no_config_key(view.configmap):
        data = value_at(view.configmap, "data")
        keys = ", ".join(sorted(map(str, data))) if isinstance(data, Mapping) and data else "none"
        return _Config(
            None,
            Finding(
                "config",
                f"ConfigMap {where} has no '{CONFIG_KEY}' key (its data keys: {keys}): the "
                "controller refuses it like an invalid config and keeps its previous config "
                "(or none)",
                f"put the MetalLB config under data.{CONFIG_KEY} (a YAML string); an explicitly "
                f'empty {CONFIG_KEY}: "" is the empty configuration',
            ),
        )
    if load.config is None:
        return _Config(
            None,
            Finding(
                "config",
                f"ConfigMap {where} is not a valid config, so MetalLB keeps running its previous "
                f"config (or none): {load.summary(5)}",
                f"fix data.{CONFIG_KEY}; kubectl -n {view.namespace} get configmap "
                f"{view.config_name} -o yaml > cm.yaml && metallb-py config check cm.yaml "
                "lists every problem",
            ),
        )
    if not load.config.pools:
        return _Config(
            load.config,
            Finding(
                "config",
                f"ConfigMap {where} defines no address pools: no Service gets an address",
                "add an address-pools entry",
            ),
        )
    return _Config(load.config, None)


def _has_no_config_key(configmap: Obj | None) -> bool:
    data = value_at(configmap, "data")
    return isinstance(data, Mapping | None) and CONFIG_KEY not in (data or {})


def _config_text(cm: Obj | None) -> str:
    """`data.config` as written ("" when absent: only the store can get here without it)."""
    text = value_at(cm, "data", CONFIG_KEY)
    return "" if text is None else str(text)


def _event_time(event: Obj) -> tuple[str, int]:
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or value_at(event, "metadata", "creationTimestamp")
        or ""
    )
    rv = str(value_at(event, "metadata", "resourceVersion") or "")
    return str(stamp), int(rv) if rv.isdigit() else 0


def _latest_config_event(view: ClusterView) -> Obj | None:
    """The controller's latest Warning about the config ConfigMap (refused or invalid)."""
    ours = [
        e
        for e in view.config_events
        if e.get("type") == "Warning"
        and e.get("reason") in CONFIG_EVENT_REASONS
        and CONTROLLER_COMPONENT
        in (value_at(e, "source", "component"), e.get("reportingComponent"))
        and value_at(e, "involvedObject", "name") == view.config_name
        and value_at(e, "involvedObject", "kind") == "ConfigMap"
    ]
    return max(ours, key=_event_time) if ours else None


def _controller_running(view: ClusterView) -> bool:
    available = value_at(view.controller_deployment, "status", "availableReplicas") or 0
    return bool(available) or any(pod_ready(p) for p in view.controller_pods)


def check_accepted(view: ClusterView, live_valid: bool) -> list[Finding]:
    """Is the live config the one in force? The controller stores what it accepted."""
    store = view.accepted_configmap
    if store is None or view.configmap is None or not live_valid:
        return []  # nothing stored yet, or the config finding already says what is wrong
    ns = view.namespace
    store_where = f"ConfigMap {ns}/{view.accepted_name}"
    stored = _config_text(store)
    digest = (value_at(store, "metadata", "annotations") or {}).get(accepted.CHECKSUM_ANNOTATION)
    if str(digest or "").lower() != accepted.checksum(stored):
        what = (
            f"has no {accepted.CHECKSUM_ANNOTATION} annotation"
            if digest is None
            else f"has a {accepted.CHECKSUM_ANNOTATION} annotation that does not match its text"
        )
        return [
            Finding(
                "config",
                f"{store_where}, where the controller keeps the config it accepted last, {what}: "
                "it was edited by hand or by a tool, so doctor cannot tell whether ConfigMap "
                f"{ns}/{view.config_name} is in force",
                f"do not edit or apply {view.accepted_name} (leave it out of GitOps and kubectl "
                "apply sets); a running controller rewrites it at once and treats it as absent "
                "until then; if it stays like this, the controller's logs say why it cannot "
                "write it",
                Severity.WARNING,
            )
        ]
    if stored == _config_text(view.configmap):
        return []
    problem = (
        f"ConfigMap {ns}/{view.config_name} is not in force: its config differs from the one "
        f"the controller accepted last ({store_where}), which MetalLB still runs"
    )
    event = _latest_config_event(view)
    if event is not None:
        stamp, _ = _event_time(event)
        problem += f"; latest {event.get('reason')} event ({stamp}): {event.get('message')}"
        event_rv = value_at(event, "involvedObject", "resourceVersion")
        live_rv = value_at(view.configmap, "metadata", "resourceVersion")
        if event_rv and live_rv and event_rv != live_rv:
            problem += " (recorded for an earlier version of the ConfigMap)"
    elif not _controller_running(view):
        problem += "; the controller is not running, so nothing takes the new config"
    else:
        problem += (
            "; no ConfigRefused or InvalidConfig event explains it (a config changed seconds "
            "ago may still be in the controller's queue: run doctor again)"
        )
    if view.events_unreadable:
        problem += f" (the ConfigMap's events cannot be read: {view.events_unreadable})"
    if event is not None and event.get("reason") == "InvalidConfig":
        fix = (
            f"the controller finds the config invalid: kubectl -n {ns} get configmap "
            f"{view.config_name} -o yaml > cm.yaml && metallb-py config check cm.yaml lists the "
            f"problems; fix data.{CONFIG_KEY}"
        )
    else:
        fix = (
            "the ConfigRefused event names the Services that would lose their IPs under the new "
            "config; metallb-py plan --live --config NEW (NEW: the config you want) lists them "
            "before you apply; move those Services to addresses the new config keeps (or delete "
            "them), or change the config so that it keeps their IPs"
        )
    return [Finding("config", problem, fix)]


def check_controller(view: ClusterView) -> list[Finding]:
    ns = view.namespace
    where = f"Deployment {ns}/controller"
    dep = view.controller_deployment
    stalls = "nothing allocates addresses (new LoadBalancer Services stay <pending>)"
    if dep is None:
        if unread(view, where):
            return []
        return [
            Finding(
                "controller",
                f"{where} does not exist: {stalls}",
                "install metallb-py: kubectl apply -f manifests/ (docs/install.md)",
            )
        ]
    replicas = value_at(dep, "spec", "replicas")
    replicas = 1 if replicas is None else int(replicas)
    scale = f"kubectl -n {ns} scale deployment controller --replicas=1"
    if replicas == 0:
        return [Finding("controller", f"{where} is scaled to 0 replicas: {stalls}", scale)]
    findings: list[Finding] = []
    if replicas > 1:
        findings.append(
            Finding(
                "controller",
                f"{where} asks for {replicas} replicas, but MetalLB's controller must run as one "
                "replica: replicas do not coordinate, each allocates on its own, so two Services "
                "can get the same IP and the replicas overwrite each other's status writes",
                scale,
            )
        )
    if _controller_running(view):
        return findings
    pod = newest(view.controller_pods)
    if pod is not None:
        state = pod_state(pod)
        findings.append(
            Finding(
                "controller",
                f"{where} has no available replica, so {stalls} and config changes are not "
                f"taken: pod {name_of(pod)} is {state}",
                pod_fix(ns, pod, state, where),
            )
        )
        return findings
    why = ""
    for cond in value_at(dep, "status", "conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            why = f" ({cond.get('message') or cond.get('reason')})"
    pods = (
        "its pods could not be read"
        if unread(view, f"Pods in {ns} (controller)")
        else "no controller pod exists" + why
    )
    findings.append(
        Finding(
            "controller",
            f"{where} has no available replica and {pods}, so {stalls} and config changes are "
            "not taken",
            f"kubectl -n {ns} describe deployment controller and kubectl -n {ns} get events say "
            "what keeps the pod from being created or started (quota, admission, ReplicaSet)",
        )
    )
    return findings
