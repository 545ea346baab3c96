"""What doctor reads from the cluster (`ClusterView`), what it reports (`Finding`), and small
readers of the objects it holds (plain dicts, as the API server returns them)."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from metallb_py.config import ConfigError
from metallb_py.config.yamlnodes import plain_documents
from metallb_py.k8s import accepted
from metallb_py.k8s.objects import Obj, name_of, value_at
from metallb_py.k8s.selectors import LabelSelector

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
        if value_at(node, "metadata", "name") in self.names:
            return True
        return self.selector is not None and self.selector.matches(node)


def containers_of(workload: Obj | None) -> list[Obj]:
    return list(value_at(workload, "spec", "template", "spec", "containers") or [])


def env_of(workload: Obj | None, name: str) -> Obj | None:
    for c in containers_of(workload):
        for e in c.get("env") or []:
            if e.get("name") == name:
                return dict(e)
    return None


def flag_of(workload: Obj | None, flag: str) -> str | None:
    """`--flag=value` (or `--flag value`) from the first container's command/args."""
    for c in containers_of(workload):
        words = [*(c.get("command") or []), *(c.get("args") or [])]
        for i, word in enumerate(words):
            if word.startswith(f"{flag}="):
                return str(word.split("=", 1)[1])
            if word == flag and i + 1 < len(words):
                return str(words[i + 1])
    return None


def networks_in(text: Any) -> list[Network]:
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


def yaml_data(text: Any) -> Any:
    """The first document of a YAML text in a ConfigMap (kubeadm's, kube-proxy's), read like
    every user input; None when it is not YAML we read."""
    try:
        docs = plain_documents(text) if isinstance(text, str) else []
    except ConfigError:
        return None
    return docs[0] if docs else None


def pod_ready(pod: Obj) -> bool:
    if value_at(pod, "status", "phase") != "Running":
        return False
    for cond in value_at(pod, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def pod_state(pod: Obj) -> str:
    """Why a pod is not running, in kubectl's words (`CreateContainerConfigError`,
    `CrashLoopBackOff`, `Pending: Unschedulable`)."""
    statuses = [
        *(value_at(pod, "status", "initContainerStatuses") or []),
        *(value_at(pod, "status", "containerStatuses") or []),
    ]
    for cs in statuses:
        waiting = value_at(cs, "state", "waiting")
        if waiting and waiting.get("reason"):
            msg = waiting.get("message")
            text = str(waiting["reason"]) + (f" ({msg})" if msg else "")
            last = value_at(cs, "lastState", "terminated")
            if last:
                text += f"; last exit: {last.get('reason') or 'terminated'}"
                if last.get("exitCode") is not None:
                    text += f", code {last['exitCode']}"
            return text
    for cond in value_at(pod, "status", "conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            msg = cond.get("message")
            return f"Pending: {cond.get('reason') or 'not scheduled'}" + (
                f" ({msg})" if msg else ""
            )
    phase = value_at(pod, "status", "phase") or "Pending"
    return "Running but not Ready" if phase == "Running" else str(phase)


_PULL_ERRORS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


def pod_fix(namespace: str, pod: Obj, state: str, workload: str) -> str:
    """What to do about a pod in `state` (from `pod_state`)."""
    name = name_of(pod)
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


def newest(pods: Iterable[Obj]) -> Obj | None:
    ordered = sorted(
        pods, key=lambda p: (str(value_at(p, "metadata", "creationTimestamp") or ""), name_of(p))
    )
    return ordered[-1] if ordered else None


def first_few(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
