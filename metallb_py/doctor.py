"""`metallb-py doctor`: find the cluster-side mistakes that make MetalLB silently not work.

The checks are the ones users hit most (docs/install.md, "doctor"): kube-proxy IPVS without
strictARP, pools overlapping the Service or Pod network or holding a node's own address, a
controller that is missing, not running or scaled beyond one replica, a live config the
controller refused, Ready nodes without a running speaker, the memberlist Secret missing, and a
config that is missing or does not parse. `gather` reads the cluster through the `kubernetes`
client into a `ClusterView` of plain dicts; `diagnose` is pure and turns that view into
findings, one line each with what to do. Only `error` findings make doctor exit 1; `warning`
(may be wrong, doctor cannot tell) and `info` lines do not.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from metallb_py.config import BgpType, Config, ConfigError, Protocol
from metallb_py.config.addresses import AddressError, parse_address_entry
from metallb_py.config.model import AddressPool, IPAddress
from metallb_py.config.yamlnodes import plain_documents
from metallb_py.k8s import accepted
from metallb_py.k8s.configmap import CONFIG_KEY, load_configmap
from metallb_py.k8s.selectors import LabelSelector, Requirement

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SPEAKER_SELECTOR = "app=metallb,component=speaker"
CONTROLLER_SELECTOR = "app=metallb,component=controller"
CONTROLLER_COMPONENT = "metallb-controller"
"""The `source.component` of the controller's Events."""
CONFIG_EVENT_REASONS = ("ConfigRefused", "InvalidConfig")


class Severity(enum.StrEnum):
    """`error` makes doctor exit 1; `warning` (might be wrong, doctor cannot tell) and `info`
    (probably intended) are printed but do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    check: str
    problem: str
    fix: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        label = self.check if self.severity is Severity.ERROR else f"{self.check} ({self.severity})"
        return f"{label}: {self.problem}. Fix: {self.fix}"


@dataclass
class ClusterView:
    """What doctor read from the cluster; None means "not there" (404)."""

    namespace: str = "metallb-system"
    configmap: Obj | None = None
    config_name: str = "config"
    accepted_configmap: Obj | None = None
    """ConfigMap `<config_name>-accepted`: the config the controller accepted last."""
    config_events: list[Obj] = field(default_factory=list)
    """Events about the config ConfigMap."""
    events_unreadable: str | None = None
    """Why `config_events` could not be read (they only explain other findings)."""
    secret: Obj | None = None
    secret_name: str = "memberlist"
    speaker_daemonset: Obj | None = None
    controller_deployment: Obj | None = None
    controller_pods: list[Obj] = field(default_factory=list)
    speaker_pods: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    kube_proxy_configmap: Obj | None = None
    kube_proxy_daemonset: Obj | None = None
    kubeadm_configmap: Obj | None = None
    service_cidrs: list[Obj] = field(default_factory=list)
    """networking.k8s.io ServiceCIDR objects (Kubernetes 1.31+), when served."""
    unreadable: list[str] = field(default_factory=list)
    """Objects doctor was not allowed to read (or could not), as "what: why"."""

    @property
    def accepted_name(self) -> str:
        return accepted.store_name(self.config_name)


@dataclass(frozen=True)
class IgnoredNodes:
    """Nodes that run no speaker on purpose (`--ignore-node`, `--ignore-node-selector`)."""

    names: frozenset[str] = frozenset()
    selector: LabelSelector | None = None

    def covers(self, node: Obj) -> bool:
        if _get(node, "metadata", "name") in self.names:
            return True
        return self.selector is not None and self.selector.matches(node)


# --- small readers of plain-dict objects ---------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _name(obj: Any) -> str:
    return str(_get(obj, "metadata", "name") or "")


def _containers(workload: Obj | None) -> list[Obj]:
    return list(_get(workload, "spec", "template", "spec", "containers") or [])


def _env(workload: Obj | None, name: str) -> Obj | None:
    for c in _containers(workload):
        for e in c.get("env") or []:
            if e.get("name") == name:
                return dict(e)
    return None


def _flag(workload: Obj | None, flag: str) -> str | None:
    """`--flag=value` (or `--flag value`) from the first container's command/args."""
    for c in _containers(workload):
        words = [*(c.get("command") or []), *(c.get("args") or [])]
        for i, word in enumerate(words):
            if word.startswith(f"{flag}="):
                return str(word.split("=", 1)[1])
            if word == flag and i + 1 < len(words):
                return str(words[i + 1])
    return None


def _networks(text: Any) -> list[Network]:
    """CIDRs from a string such as "10.96.0.0/12,fd00::/108"; unparsable parts are skipped."""
    out: list[Network] = []
    for raw in str(text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            continue
    return out


def _yaml(text: Any) -> Any:
    """The first document of a YAML text in a ConfigMap (kubeadm's, kube-proxy's), read like
    every user input; None when it is not YAML we read."""
    try:
        docs = plain_documents(text) if isinstance(text, str) else []
    except ConfigError:
        return None
    return docs[0] if docs else None


def _node_ready(node: Obj) -> bool:
    for cond in _get(node, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _pod_ready(pod: Obj) -> bool:
    if _get(pod, "status", "phase") != "Running":
        return False
    for cond in _get(pod, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _pod_state(pod: Obj) -> str:
    """Why a pod is not running, in kubectl's words (`CreateContainerConfigError`,
    `CrashLoopBackOff`, `Pending: Unschedulable`)."""
    statuses = [
        *(_get(pod, "status", "initContainerStatuses") or []),
        *(_get(pod, "status", "containerStatuses") or []),
    ]
    for cs in statuses:
        waiting = _get(cs, "state", "waiting")
        if waiting and waiting.get("reason"):
            msg = waiting.get("message")
            text = str(waiting["reason"]) + (f" ({msg})" if msg else "")
            last = _get(cs, "lastState", "terminated")
            if last:
                text += f"; last exit: {last.get('reason') or 'terminated'}"
                if last.get("exitCode") is not None:
                    text += f", code {last['exitCode']}"
            return text
    for cond in _get(pod, "status", "conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            msg = cond.get("message")
            return f"Pending: {cond.get('reason') or 'not scheduled'}" + (
                f" ({msg})" if msg else ""
            )
    phase = _get(pod, "status", "phase") or "Pending"
    return "Running but not Ready" if phase == "Running" else str(phase)


_PULL_ERRORS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


def _pod_fix(namespace: str, pod: Obj, state: str, workload: str) -> str:
    """What to do about a pod in `state` (from `_pod_state`)."""
    name = _name(pod)
    describe = f"kubectl -n {namespace} describe pod {name}"
    if state.startswith(_PULL_ERRORS):
        return (
            f"the image cannot be pulled: check the image of {workload} and that the nodes can "
            f"reach its registry (and have its imagePullSecrets); {describe} shows the pull error"
        )
    if state.startswith(("CrashLoopBackOff", "RunContainerError", "Error")):
        return (
            f"the container keeps exiting: kubectl -n {namespace} logs {name} --previous says why"
        )
    if state.startswith("Pending: Unschedulable"):
        return (
            "the scheduler cannot place it (its message says why): free capacity on the nodes or "
            f"relax the nodeSelector, affinity or tolerations of {workload}"
        )
    if state == "Running but not Ready":
        return f"its readiness check (/readyz) fails: kubectl -n {namespace} logs {name} says why"
    return describe


def _newest(pods: Iterable[Obj]) -> Obj | None:
    ordered = sorted(
        pods, key=lambda p: (str(_get(p, "metadata", "creationTimestamp") or ""), _name(p))
    )
    return ordered[-1] if ordered else None


# --- where a DaemonSet runs ------------------------------------------------------------------

# Tolerations the DaemonSet controller adds to every DaemonSet pod (the last one only with
# hostNetwork, which the speaker uses): these taints never keep a speaker off a node.
_DAEMONSET_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION: Obj = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def _tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key") and op == "Exists":
            return True
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


_NODE_SELECTOR_OPS = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!exists",
    "Gt": "gt",
    "Lt": "lt",
}


def _node_requirement(expr: Mapping[str, Any]) -> Requirement | None:
    """A NodeSelectorRequirement as a label-selector requirement; None when it is malformed
    (the scheduler then matches nothing with its term)."""
    op = _NODE_SELECTOR_OPS.get(str(expr.get("operator")))
    key = expr.get("key")
    values = tuple(str(v) for v in expr.get("values") or [])
    if op is None or not key:
        return None
    if op in ("gt", "lt"):
        if len(values) != 1:
            return None
        try:
            int(values[0])
        except ValueError:
            return None
    return Requirement(str(key), op, values)


def _term_matches(term: Mapping[str, Any], node: Obj) -> bool:
    """One nodeSelectorTerm: all its expressions and fields hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = _get(node, "metadata", "labels") or {}
    for expr in expressions:
        req = _node_requirement(expr)
        if req is None or not req.matches(labels):
            return False
    node_fields = {"metadata.name": _name(node)}
    for expr in fields:
        req = _node_requirement(expr)
        if expr.get("key") != "metadata.name" or req is None or req.op not in ("in", "notin"):
            return False
        if not req.matches(node_fields):
            return False
    return True


def _why_not_scheduled(ds: Obj, node: Obj) -> str | None:
    """The DaemonSet rule that keeps its pods off this node, if any."""
    pod_spec = _get(ds, "spec", "template", "spec") or {}
    labels = _get(node, "metadata", "labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"the speaker DaemonSet's nodeSelector {key}={value} does not match it"
    required = _get(
        pod_spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if isinstance(required, Mapping):
        terms = required.get("nodeSelectorTerms") or []
        if not any(_term_matches(t, node) for t in terms if isinstance(t, Mapping)):
            return "the speaker DaemonSet's required node affinity does not match it"
    tolerations = [*(pod_spec.get("tolerations") or []), *_DAEMONSET_TOLERATIONS]
    if pod_spec.get("hostNetwork"):
        tolerations.append(_HOST_NETWORK_TOLERATION)
    for taint in _get(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, taint
        ):
            key = taint.get("key")
            return f"the speaker DaemonSet does not tolerate its taint {key}:{taint.get('effect')}"
    return None


# --- the checks -------------------------------------------------------------------------------


def _unread(view: ClusterView, what: str) -> bool:
    """True when `what` could not be read (so "missing" would be a guess, not a finding)."""
    return any(u.startswith(what + ":") for u in view.unreadable)


@dataclass(frozen=True)
class _Config:
    config: Config | None
    finding: Finding | None


def _bgp_type(view: ClusterView) -> BgpType:
    env = _env(view.speaker_daemonset, "METALLB_BGP_TYPE")
    value = (env or {}).get("value") or "native"
    return BgpType.FRR if value == "frr" else BgpType.NATIVE


def _check_config(view: ClusterView) -> _Config:
    """The live ConfigMap judged exactly as the controller judges it (`load_configmap`)."""
    where = f"{view.namespace}/{view.config_name}"
    if view.configmap is None and _unread(view, f"ConfigMap {where}"):
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
        data = _get(view.configmap, "data")
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
    data = _get(configmap, "data")
    return isinstance(data, Mapping | None) and CONFIG_KEY not in (data or {})


def _config_text(cm: Obj | None) -> str:
    """`data.config` as written ("" when absent: only the store can get here without it)."""
    text = _get(cm, "data", CONFIG_KEY)
    return "" if text is None else str(text)


def _event_time(event: Obj) -> tuple[str, int]:
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _get(event, "metadata", "creationTimestamp")
        or ""
    )
    rv = str(_get(event, "metadata", "resourceVersion") or "")
    return str(stamp), int(rv) if rv.isdigit() else 0


def _latest_config_event(view: ClusterView) -> Obj | None:
    """The controller's latest Warning about the config ConfigMap (refused or invalid)."""
    ours = [
        e
        for e in view.config_events
        if e.get("type") == "Warning"
        and e.get("reason") in CONFIG_EVENT_REASONS
        and CONTROLLER_COMPONENT in (_get(e, "source", "component"), e.get("reportingComponent"))
        and _get(e, "involvedObject", "name") == view.config_name
        and _get(e, "involvedObject", "kind") == "ConfigMap"
    ]
    return max(ours, key=_event_time) if ours else None


def _controller_running(view: ClusterView) -> bool:
    available = _get(view.controller_deployment, "status", "availableReplicas") or 0
    return bool(available) or any(_pod_ready(p) for p in view.controller_pods)


def _check_accepted(view: ClusterView, live_valid: bool) -> list[Finding]:
    """Is the live config the one in force? The controller stores what it accepted."""
    store = view.accepted_configmap
    if store is None or view.configmap is None or not live_valid:
        return []  # nothing stored yet, or the config finding already says what is wrong
    ns = view.namespace
    store_where = f"ConfigMap {ns}/{view.accepted_name}"
    stored = _config_text(store)
    digest = (_get(store, "metadata", "annotations") or {}).get(accepted.CHECKSUM_ANNOTATION)
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
        event_rv = _get(event, "involvedObject", "resourceVersion")
        live_rv = _get(view.configmap, "metadata", "resourceVersion")
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


def _check_controller(view: ClusterView) -> list[Finding]:
    ns = view.namespace
    where = f"Deployment {ns}/controller"
    dep = view.controller_deployment
    stalls = "nothing allocates addresses (new LoadBalancer Services stay <pending>)"
    if dep is None:
        if _unread(view, where):
            return []
        return [
            Finding(
                "controller",
                f"{where} does not exist: {stalls}",
                "install metallb-py: kubectl apply -f manifests/ (docs/install.md)",
            )
        ]
    replicas = _get(dep, "spec", "replicas")
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
    pod = _newest(view.controller_pods)
    if pod is not None:
        state = _pod_state(pod)
        findings.append(
            Finding(
                "controller",
                f"{where} has no available replica, so {stalls} and config changes are not "
                f"taken: pod {_name(pod)} is {state}",
                _pod_fix(ns, pod, state, where),
            )
        )
        return findings
    why = ""
    for cond in _get(dep, "status", "conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            why = f" ({cond.get('message') or cond.get('reason')})"
    pods = (
        "its pods could not be read"
        if _unread(view, f"Pods in {ns} (controller)")
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


def _kube_proxy_config(view: ClusterView) -> tuple[str, Mapping[str, Any]] | None:
    """(key, parsed) of the kube-proxy ConfigMap entry kube-proxy reads as its config file.

    The key the DaemonSet's `--config` flag names (its basename: the ConfigMap is mounted as a
    directory), else `config.conf` (kubeadm), else the only entry that is a
    KubeProxyConfiguration. Never `kubeconfig.conf`, kubeadm's kubeconfig for kube-proxy.
    """
    data = _get(view.kube_proxy_configmap, "data") or {}
    wanted: list[str] = []
    flag = _flag(view.kube_proxy_daemonset, "--config")
    if flag:
        wanted.append(PurePosixPath(flag).name)
    wanted.append("config.conf")
    for key in wanted:
        if key in data and key != "kubeconfig.conf":
            parsed = _yaml(data[key])
            if isinstance(parsed, Mapping):
                return key, parsed
    typed = []
    for key, value in data.items():
        parsed = _yaml(value)
        if (
            key != "kubeconfig.conf"
            and isinstance(parsed, Mapping)
            and parsed.get("kind") == "KubeProxyConfiguration"
        ):
            typed.append((str(key), parsed))
    return typed[0] if len(typed) == 1 else None


def _kube_proxy(view: ClusterView) -> tuple[str, bool | None, str] | None:
    """(mode, strictARP, where it was read) or None when kube-proxy's setup is unknown."""
    found = _kube_proxy_config(view)
    if found is not None:
        key, conf = found
        mode = str(conf.get("mode") or "")
        strict = _get(conf, "ipvs", "strictARP")
        return (
            mode,
            None if strict is None else bool(strict),
            f"ConfigMap kube-system/kube-proxy {key}",
        )
    ds = view.kube_proxy_daemonset
    if ds is not None:
        flag_mode = _flag(ds, "--proxy-mode")
        if flag_mode is not None:
            strict_flag = _flag(ds, "--ipvs-strict-arp")
            flag_strict = None if strict_flag is None else strict_flag.lower() in ("true", "1")
            return flag_mode, flag_strict, "DaemonSet kube-system/kube-proxy flags"
    return None


def _check_strict_arp(view: ClusterView, config: Config | None) -> list[Finding]:
    proxy = _kube_proxy(view)
    if proxy is None:
        return []
    mode, strict, where = proxy
    if mode != "ipvs" or strict is True:
        return []
    if config is not None and not any(p.protocol is Protocol.LAYER2 for p in config.pools):
        return []  # BGP only: no ARP involved
    return [
        Finding(
            "kube-proxy",
            f"kube-proxy runs in IPVS mode without strictARP ({where}): every node answers ARP "
            "for LoadBalancer IPs bound to kube-ipvs0, so layer2 traffic lands on random nodes",
            "set ipvs.strictARP: true in ConfigMap kube-system/kube-proxy (kubectl -n kube-system"
            " edit configmap kube-proxy) and restart kube-proxy (kubectl -n kube-system rollout"
            " restart daemonset kube-proxy)",
        )
    ]


def cluster_networks(view: ClusterView) -> tuple[dict[str, Network], dict[str, Network]]:
    """Service and Pod networks, each keyed by where it was found."""
    services: dict[str, Network] = {}
    pods: dict[str, Network] = {}
    kubeadm = _yaml(_get(view.kubeadm_configmap, "data", "ClusterConfiguration"))
    for net in _networks(_get(kubeadm, "networking", "serviceSubnet")):
        services[f"kubeadm serviceSubnet {net}"] = net
    for net in _networks(_get(kubeadm, "networking", "podSubnet")):
        pods[f"kubeadm podSubnet {net}"] = net
    for sc in view.service_cidrs:
        for net in _networks(",".join(_get(sc, "spec", "cidrs") or [])):
            services[f"ServiceCIDR {_get(sc, 'metadata', 'name')} {net}"] = net
    for node in view.nodes:
        cidrs = _get(node, "spec", "podCIDRs") or [_get(node, "spec", "podCIDR")]
        for net in _networks(",".join(c for c in cidrs if c)):
            pods[f"node {_get(node, 'metadata', 'name')} podCIDR {net}"] = net
    proxy = _kube_proxy_config(view)
    for net in _networks(_get(proxy[1] if proxy else None, "clusterCIDR")):
        pods[f"kube-proxy clusterCIDR {net}"] = net
    return services, pods


def _check_overlaps(view: ClusterView, config: Config | None) -> list[Finding]:
    if config is None:
        return []
    services, pods = cluster_networks(view)
    findings: list[Finding] = []
    for pool in config.pools:
        reported: set[str] = set()
        for cidr in pool.cidrs:
            for kind, networks in (("Service", services), ("Pod", pods)):
                for where, net in networks.items():
                    if net.version == cidr.version and cidr.overlaps(net) and where not in reported:
                        reported.add(where)
                        findings.append(
                            Finding(
                                "address-pools",
                                f"pool {pool.name!r} ({cidr}) overlaps the {kind} network "
                                f"({where}): MetalLB would hand out addresses the cluster already "
                                "routes internally",
                                f"give pool {pool.name!r} addresses outside {net}",
                            )
                        )
        for svc in view.services:
            for ip in _get(svc, "spec", "clusterIPs") or [_get(svc, "spec", "clusterIP")]:
                try:
                    addr = ipaddress.ip_address(ip)
                except (TypeError, ValueError):
                    continue
                if pool.contains(addr) and not any(addr in n for n in services.values()):
                    key = f"{_get(svc, 'metadata', 'namespace')}/{_get(svc, 'metadata', 'name')}"
                    findings.append(
                        Finding(
                            "address-pools",
                            f"pool {pool.name!r} contains {addr}, the cluster IP of Service {key}: "
                            "it overlaps the Service network",
                            f"give pool {pool.name!r} addresses outside the Service network",
                        )
                    )
    return findings


def _node_addresses(view: ClusterView, *types: str) -> list[tuple[IPAddress, str, str]]:
    """(address, type, node) for the nodes' addresses of these types, in node order."""
    out: list[tuple[IPAddress, str, str]] = []
    for node in sorted(view.nodes, key=_name):
        for entry in _get(node, "status", "addresses") or []:
            if entry.get("type") not in types:
                continue
            try:
                ip = ipaddress.ip_address(str(entry.get("address") or ""))
            except ValueError:
                continue
            out.append((ip, str(entry["type"]), _name(node)))
    return out


def _entries(pool: AddressPool) -> list[tuple[str, IPAddress, IPAddress]]:
    """(entry as written, first address, last address) for each of the pool's entries."""
    out: list[tuple[str, IPAddress, IPAddress]] = []
    for text in pool.addresses:
        try:
            entry = parse_address_entry(text)
        except AddressError:
            continue
        out.append((text, entry.cidrs[0].network_address, entry.cidrs[-1].broadcast_address))
    return out


def _range_text(first: IPAddress, last: IPAddress) -> str:
    return f"{first}/{first.max_prefixlen}" if first == last else f"{first}-{last}"


def _without(first: IPAddress, last: IPAddress, holes: list[IPAddress]) -> list[str]:
    """The range first..last minus the sorted addresses `holes` (all inside it)."""
    pieces: list[str] = []
    start = int(first)
    for hole in holes:
        if int(hole) > start:
            pieces.append(
                _range_text(ipaddress.ip_address(start), ipaddress.ip_address(int(hole) - 1))
            )
        start = int(hole) + 1
    if start <= int(last):
        pieces.append(_range_text(ipaddress.ip_address(start), last))
    return pieces


def _split_fix(pool: AddressPool, holes: set[IPAddress]) -> str:
    edits: list[str] = []
    for text, first, last in _entries(pool):
        inside = sorted(
            (ip for ip in holes if ip.version == first.version and first <= ip <= last),  # type: ignore[operator]
            key=int,
        )
        if not inside:
            continue
        pieces = _without(first, last, inside)
        if len(pieces) > 6:
            return f"write pool {pool.name!r} as ranges that skip these addresses"
        edits.append(f"replace {text} with {', '.join(pieces)}" if pieces else f"remove {text}")
    return f"take them out of pool {pool.name!r}: " + "; ".join(edits)


def _shown(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _check_node_addresses(view: ClusterView, config: Config | None) -> list[Finding]:
    """Pools must not hold a node's own address; layer2 pools should be on the nodes' links."""
    if config is None:
        return []
    from metallb_py.allocator.ips import is_buggy

    node_ips = _node_addresses(view, "InternalIP", "ExternalIP")
    internal = [ip for ip, kind, _ in node_ips if kind == "InternalIP"]
    findings: list[Finding] = []
    for pool in config.pools:
        hits = [
            (ip, kind, node)
            for ip, kind, node in node_ips
            if pool.contains(ip) and not (pool.avoid_buggy_ips and is_buggy(ip))
        ]
        if hits:
            listed = ", ".join(f"{ip} ({kind} of node {node})" for ip, kind, node in hits)
            findings.append(
                Finding(
                    "address-pools",
                    f"pool {pool.name!r} contains node addresses: {listed}: the allocator can "
                    "hand a node's own address to a Service, which then takes the node's "
                    "traffic (and in layer2 two machines answer ARP/NDP for it)",
                    _split_fix(pool, {ip for ip, _, _ in hits}),
                )
            )
        if pool.protocol is not Protocol.LAYER2:
            continue
        for version in sorted({c.version for c in pool.cidrs}):
            prefix = 24 if version == 4 else 64
            subnets = sorted(
                {
                    ipaddress.ip_network((ip, prefix), strict=False)
                    for ip in internal
                    if ip.version == version
                },
                key=lambda n: int(n.network_address),
            )
            if not subnets:
                continue  # no node address of this family to compare with
            cidrs = [c for c in pool.cidrs if c.version == version]
            if any(c.overlaps(n) for c in cidrs for n in subnets):
                continue
            written = [t for t, first, _ in _entries(pool) if first.version == version]
            findings.append(
                Finding(
                    "address-pools",
                    f"layer2 pool {pool.name!r} ({_shown(written)}) shares no /{prefix} with any "
                    f"node InternalIP (nodes in {_shown([str(n) for n in subnets])}): layer2 "
                    "answers ARP/NDP on the nodes' own links, so these addresses are reachable "
                    "only if they are in the nodes' subnet; doctor sees node addresses, not "
                    f"prefix lengths, so this is fine if that subnet is wider than /{prefix} "
                    "and holds them",
                    "if the pool is not on the nodes' subnet, take its addresses from that subnet "
                    "or announce it with protocol: bgp; if it is, nothing to do",
                    Severity.WARNING,
                )
            )
    return findings


def _check_speakers(view: ClusterView, ignore: IgnoredNodes) -> list[Finding]:
    ds = view.speaker_daemonset
    if ds is None and _unread(view, f"DaemonSet {view.namespace}/speaker"):
        return []
    if ds is None:
        return [
            Finding(
                "speaker",
                f"DaemonSet {view.namespace}/speaker does not exist: nothing announces any address",
                "install metallb-py: kubectl apply -f manifests/ (docs/install.md)",
            )
        ]
    findings: list[Finding] = []
    kept_off: dict[str, list[str]] = {}
    by_node: dict[str, list[Obj]] = {}
    for pod in view.speaker_pods:
        node = _get(pod, "spec", "nodeName")
        if node:
            by_node.setdefault(str(node), []).append(pod)
    for node in sorted(view.nodes, key=_name):
        name = _name(node)
        if not _node_ready(node) or ignore.covers(node):
            continue
        pods = by_node.get(name, [])
        if any(_pod_ready(p) for p in pods):
            continue
        if pods:
            pod = pods[0]
            state = _pod_state(pod)
            fix = _pod_fix(view.namespace, pod, state, f"DaemonSet {view.namespace}/speaker")
            if "CreateContainerConfigError" in state:
                fix += f" (usually the memberlist Secret {view.secret_name!r} is missing)"
            findings.append(
                Finding(
                    "speaker",
                    f"Ready node {name} has no running speaker: pod {_name(pod)} is {state}",
                    fix,
                )
            )
            continue
        reason = _why_not_scheduled(ds, node)
        if reason is not None:
            kept_off.setdefault(reason, []).append(name)
            continue
        findings.append(
            Finding(
                "speaker",
                f"Ready node {name} runs no speaker pod though the speaker DaemonSet should run "
                "there; it cannot announce layer2 addresses nor peer over BGP",
                f"kubectl -n {view.namespace} describe daemonset speaker",
            )
        )
    if kept_off:
        parts = [f"{_shown(names, 10)} ({reason})" for reason, names in kept_off.items()]
        count = sum(len(names) for names in kept_off.values())
        findings.append(
            Finding(
                "speaker",
                f"{count} Ready node(s) run no speaker because the speaker DaemonSet keeps it off "
                f"them, so they never announce: {'; '.join(parts)}",
                "nothing if that is intended; to run speakers there, add a toleration or widen "
                "the DaemonSet's nodeSelector or node affinity; --ignore-node NAME or "
                "--ignore-node-selector SELECTOR hides this line",
                Severity.INFO,
            )
        )
    return findings


def _check_secret(view: ClusterView) -> list[Finding]:
    if view.speaker_daemonset is None:
        return []  # not installed: the speaker finding says so
    if _env(view.speaker_daemonset, "METALLB_ML_SECRET_KEY") is None:
        return []  # memberlist disabled in this install
    create = (
        f"the controller creates it at start (check its logs and its Role); or create it: "
        f"kubectl -n {view.namespace} create secret generic {view.secret_name} "
        '--from-literal=secretkey="$(openssl rand -base64 16)"'
    )
    if view.secret is None and _unread(view, f"Secret {view.namespace}/{view.secret_name}"):
        return []
    if view.secret is None:
        return [
            Finding(
                "memberlist",
                f"Secret {view.namespace}/{view.secret_name} does not exist: speaker pods cannot "
                "start (CreateContainerConfigError)",
                create,
            )
        ]
    if not (_get(view.secret, "data", "secretkey") or _get(view.secret, "stringData", "secretkey")):
        return [
            Finding(
                "memberlist",
                f"Secret {view.namespace}/{view.secret_name} has no 'secretkey' entry",
                create.replace("create it", "recreate it"),
            )
        ]
    return []


def diagnose(view: ClusterView, ignore: IgnoredNodes | None = None) -> list[Finding]:
    """Every problem found, in a stable order; empty for a healthy cluster."""
    findings = [
        Finding("access", f"cannot read {what}", "run doctor with a kubeconfig allowed to read it")
        for what in view.unreadable
    ]
    checked = _check_config(view)
    if checked.finding is not None:
        findings.append(checked.finding)
    findings += _check_accepted(view, checked.config is not None)
    findings += _check_controller(view)
    findings += _check_strict_arp(view, checked.config)
    findings += _check_overlaps(view, checked.config)
    findings += _check_node_addresses(view, checked.config)
    findings += _check_secret(view)
    findings += _check_speakers(view, ignore or IgnoredNodes())
    return findings


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is an error, else 0 (warnings and info lines only inform)."""
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0


# --- reading the cluster (adapter) -------------------------------------------------------------


def _names_from_workloads(view: ClusterView) -> None:
    """Use the ConfigMap and Secret names the installed components were given."""
    for workload in (view.speaker_daemonset, view.controller_deployment):
        name = _flag(workload, "--config")
        if name:
            view.config_name = name
            break
    env = _env(view.speaker_daemonset, "METALLB_ML_SECRET_KEY")
    ref = _get(env, "valueFrom", "secretKeyRef", "name")
    if ref:
        view.secret_name = str(ref)


def _match_labels(workload: Obj | None, default: str) -> str:
    labels = _get(workload, "spec", "selector", "matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or default


def gather(api_client: Any, namespace: str = "metallb-system") -> ClusterView:
    """Read what `diagnose` needs. Missing objects are None; forbidden ones are noted."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(api_client)
    apps = k8s.AppsV1Api(api_client)
    networking = k8s.NetworkingV1Api(api_client)
    view = ClusterView(namespace=namespace)

    def read(what: str, call: Callable[..., Any], optional: bool = False) -> Any:
        # Raw JSON, not the client's models: those refuse objects whose optional-in-practice
        # fields are absent, and doctor must read whatever the cluster holds.
        try:
            response = call(_preload_content=False)
            return json.loads(response.data or b"null")
        except ApiException as exc:
            if exc.status == 404 or (optional and exc.status in (403, 405)):
                return None
            view.unreadable.append(f"{what}: HTTP {exc.status} {exc.reason}")
            return None

    view.speaker_daemonset = read(
        f"DaemonSet {namespace}/speaker",
        lambda **kw: apps.read_namespaced_daemon_set("speaker", namespace, **kw),
    )
    view.controller_deployment = read(
        f"Deployment {namespace}/controller",
        lambda **kw: apps.read_namespaced_deployment("controller", namespace, **kw),
    )
    if view.controller_deployment is not None:
        selector = _match_labels(view.controller_deployment, CONTROLLER_SELECTOR)
        pods = read(
            f"Pods in {namespace} (controller)",
            lambda **kw: core.list_namespaced_pod(namespace, label_selector=selector, **kw),
        )
        view.controller_pods = list((pods or {}).get("items") or [])
    _names_from_workloads(view)
    view.configmap = read(
        f"ConfigMap {namespace}/{view.config_name}",
        lambda **kw: core.read_namespaced_config_map(view.config_name, namespace, **kw),
    )
    view.accepted_configmap = read(
        f"ConfigMap {namespace}/{view.accepted_name}",
        lambda **kw: core.read_namespaced_config_map(view.accepted_name, namespace, **kw),
    )
    try:
        events: Any = core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={view.config_name},involvedObject.kind=ConfigMap",
            _preload_content=False,
        )
        view.config_events = list((json.loads(events.data or b"null") or {}).get("items") or [])
    except ApiException as exc:
        view.events_unreadable = f"HTTP {exc.status} {exc.reason}"
    view.secret = read(
        f"Secret {namespace}/{view.secret_name}",
        lambda **kw: core.read_namespaced_secret(view.secret_name, namespace, **kw),
    )
    pods = read(
        f"Pods in {namespace}",
        lambda **kw: core.list_namespaced_pod(namespace, label_selector=SPEAKER_SELECTOR, **kw),
    )
    view.speaker_pods = list((pods or {}).get("items") or [])
    nodes = read("Nodes", core.list_node)
    view.nodes = list((nodes or {}).get("items") or [])
    services = read("Services", core.list_service_for_all_namespaces)
    view.services = list((services or {}).get("items") or [])
    view.kube_proxy_configmap = read(
        "ConfigMap kube-system/kube-proxy",
        lambda **kw: core.read_namespaced_config_map("kube-proxy", "kube-system", **kw),
        optional=True,
    )
    view.kube_proxy_daemonset = read(
        "DaemonSet kube-system/kube-proxy",
        lambda **kw: apps.read_namespaced_daemon_set("kube-proxy", "kube-system", **kw),
        optional=True,
    )
    view.kubeadm_configmap = read(
        "ConfigMap kube-system/kubeadm-config",
        lambda **kw: core.read_namespaced_config_map("kubeadm-config", "kube-system", **kw),
        optional=True,
    )
    cidrs = read("ServiceCIDRs", networking.list_service_cidr, optional=True)
    view.service_cidrs = list((cidrs or {}).get("items") or [])
    return view
