"""`metallb-py doctor`: find the cluster-side mistakes that make MetalLB silently not work.

The checks are the ones users hit most (spec 9 items 1, 5, 20; the Konvoy and Antrea notes in
the seeds): kube-proxy IPVS without strictARP, pools overlapping the Service or Pod network, Ready
nodes without a running speaker, the memberlist Secret missing, and a config that is missing or
does not parse. `gather` reads the cluster through the `kubernetes` client into a `ClusterView`
of plain dicts; `diagnose` is pure and turns that view into findings, one line each with a fix.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from metallb_py.config import BgpType, Config, ConfigError, Protocol, parse_config
from metallb_py.config.document import CONFIG_KEY

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SPEAKER_SELECTOR = "app=metallb,component=speaker"


@dataclass(frozen=True)
class Finding:
    check: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.check}: {self.problem}. Fix: {self.fix}"


@dataclass
class ClusterView:
    """What doctor read from the cluster; None means "not there" (404)."""

    namespace: str = "metallb-system"
    configmap: Obj | None = None
    config_name: str = "config"
    secret: Obj | None = None
    secret_name: str = "memberlist"
    speaker_daemonset: Obj | None = None
    controller_deployment: Obj | None = None
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


# --- small readers of plain-dict objects ---------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


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
    try:
        return yaml.safe_load(str(text or ""))
    except yaml.YAMLError:
        return None


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
    """Why a speaker pod is not running, in kubectl's words (`CreateContainerConfigError`)."""
    for cs in _get(pod, "status", "containerStatuses") or []:
        waiting = _get(cs, "state", "waiting")
        if waiting and waiting.get("reason"):
            msg = waiting.get("message")
            return str(waiting["reason"]) + (f" ({msg})" if msg else "")
    phase = _get(pod, "status", "phase") or "Pending"
    return "Running but not Ready" if phase == "Running" else str(phase)


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


def _why_not_scheduled(ds: Obj, node: Obj) -> str | None:
    """The DaemonSet rule that keeps the speaker off this node, if any."""
    pod_spec = _get(ds, "spec", "template", "spec") or {}
    labels = _get(node, "metadata", "labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"the speaker DaemonSet's nodeSelector {key}={value} does not match it"
    for taint in _get(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            pod_spec.get("tolerations") or [], taint
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
    where = f"{view.namespace}/{view.config_name}"
    if view.configmap is None and _unread(view, f"ConfigMap {where}"):
        return _Config(None, None)
    if view.configmap is None:
        return _Config(
            None,
            Finding(
                "config",
                f"ConfigMap {where} does not exist, so MetalLB has no address pools and "
                "allocates nothing",
                "create it (see manifests/example-layer2-config.yaml), e.g. kubectl apply -f "
                "config.yaml; check it first with metallb-py config check config.yaml",
            ),
        )
    text = _get(view.configmap, "data", CONFIG_KEY)
    if text is None:
        return _Config(
            Config(),
            Finding(
                "config",
                f"ConfigMap {where} has no '{CONFIG_KEY}' key: MetalLB runs with an empty "
                "configuration",
                f"put the MetalLB config under data.{CONFIG_KEY} (a YAML string)",
            ),
        )
    try:
        config = parse_config(str(text), _bgp_type(view))
    except ConfigError as exc:
        shown = "; ".join(str(p) for p in exc.problems[:5])
        more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
        return _Config(
            None,
            Finding(
                "config",
                f"ConfigMap {where} is not a valid config, so MetalLB keeps running its previous "
                f"config (or none): {shown}{more}",
                f"fix data.{CONFIG_KEY}; kubectl -n {view.namespace} get configmap "
                f"{view.config_name} -o yaml > cm.yaml && metallb-py config check cm.yaml "
                "lists every problem",
            ),
        )
    if not config.pools:
        return _Config(
            config,
            Finding(
                "config",
                f"ConfigMap {where} defines no address pools: no Service gets an address",
                "add an address-pools entry",
            ),
        )
    return _Config(config, None)


def _kube_proxy(view: ClusterView) -> tuple[str, bool | None, str] | None:
    """(mode, strictARP, where it was read) or None when kube-proxy's setup is unknown."""
    conf = None
    for key, value in (_get(view.kube_proxy_configmap, "data") or {}).items():
        if key.endswith(".conf") or key in ("config", "config.yaml"):
            conf = _yaml(value)
            if isinstance(conf, Mapping):
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
    proxy_conf = None
    for key, value in (_get(view.kube_proxy_configmap, "data") or {}).items():
        if key.endswith(".conf"):
            proxy_conf = _yaml(value)
    for net in _networks(_get(proxy_conf, "clusterCIDR")):
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


def _check_speakers(view: ClusterView) -> list[Finding]:
    ds = view.speaker_daemonset
    if ds is None and _unread(view, f"DaemonSet {view.namespace}/speaker"):
        return []
    if ds is None:
        return [
            Finding(
                "speaker",
                f"DaemonSet {view.namespace}/speaker does not exist: nothing announces any address",
                "install metallb-py: kubectl apply -f manifests/namespace.yaml -f "
                "manifests/metallb.yaml",
            )
        ]
    findings: list[Finding] = []
    by_node: dict[str, list[Obj]] = {}
    for pod in view.speaker_pods:
        node = _get(pod, "spec", "nodeName")
        if node:
            by_node.setdefault(str(node), []).append(pod)
    for node in sorted(view.nodes, key=lambda n: str(_get(n, "metadata", "name"))):
        name = str(_get(node, "metadata", "name"))
        if not _node_ready(node):
            continue
        pods = by_node.get(name, [])
        if any(_pod_ready(p) for p in pods):
            continue
        if pods:
            pod = pods[0]
            state = _pod_state(pod)
            fix = f"kubectl -n {view.namespace} describe pod {_get(pod, 'metadata', 'name')}"
            if "CreateContainerConfigError" in state:
                fix += f" (usually the memberlist Secret {view.secret_name!r} is missing)"
            findings.append(
                Finding(
                    "speaker",
                    f"Ready node {name} has no running speaker: pod "
                    f"{_get(pod, 'metadata', 'name')} is {state}",
                    fix,
                )
            )
            continue
        reason = _why_not_scheduled(ds, node)
        findings.append(
            Finding(
                "speaker",
                f"Ready node {name} runs no speaker pod"
                + (f": {reason}" if reason else "")
                + "; it cannot announce layer2 addresses nor peer over BGP",
                "add a matching toleration or nodeSelector to the speaker DaemonSet if the node "
                "should announce"
                if reason
                else f"kubectl -n {view.namespace} describe daemonset speaker",
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


def diagnose(view: ClusterView) -> list[Finding]:
    """Every problem found, in a stable order; empty for a healthy cluster."""
    findings = [
        Finding("access", f"cannot read {what}", "run doctor with a kubeconfig allowed to read it")
        for what in view.unreadable
    ]
    checked = _check_config(view)
    if checked.finding is not None:
        findings.append(checked.finding)
    findings += _check_strict_arp(view, checked.config)
    findings += _check_overlaps(view, checked.config)
    findings += _check_secret(view)
    findings += _check_speakers(view)
    return findings


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
    _names_from_workloads(view)
    view.configmap = read(
        f"ConfigMap {namespace}/{view.config_name}",
        lambda **kw: core.read_namespaced_config_map(view.config_name, namespace, **kw),
    )
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
