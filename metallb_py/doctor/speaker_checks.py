"""Checks of the speakers: Ready nodes without a running speaker (unless the DaemonSet keeps
it off on purpose) and the memberlist Secret."""

from __future__ import annotations

from metallb_py.doctor.config_checks import unread
from metallb_py.doctor.scheduling import why_not_scheduled
from metallb_py.doctor.view import (
    ClusterView,
    Finding,
    IgnoredNodes,
    Severity,
    env_of,
    first_few,
    pod_fix,
    pod_ready,
    pod_state,
)
from metallb_py.k8s.objects import Obj, name_of, node_ready, value_at


def check_speakers(view: ClusterView, ignore: IgnoredNodes) -> list[Finding]:
    ds = view.speaker_daemonset
    if ds is None and unread(view, f"DaemonSet {view.namespace}/speaker"):
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
        node = value_at(pod, "spec", "nodeName")
        if node:
            by_node.setdefault(str(node), []).append(pod)
    for node in sorted(view.nodes, key=name_of):
        name = name_of(node)
        if node_ready(node) is not True or ignore.covers(node):
            continue
        pods = by_node.get(name, [])
        if any(pod_ready(p) for p in pods):
            continue
        if pods:
            pod = pods[0]
            state = pod_state(pod)
            fix = pod_fix(view.namespace, pod, state, f"DaemonSet {view.namespace}/speaker")
            if "CreateContainerConfigError" in state:
                fix += f" (usually the memberlist Secret {view.secret_name!r} is missing)"
            findings.append(
                Finding(
                    "speaker",
                    f"Ready node {name} has no running speaker: pod {name_of(pod)} is {state}",
                    fix,
                )
            )
            continue
        reason = why_not_scheduled(ds, node)
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
        parts = [f"{first_few(names, 10)} ({reason})" for reason, names in kept_off.items()]
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


def check_secret(view: ClusterView) -> list[Finding]:
    if view.speaker_daemonset is None:
        return []  # not installed: the speaker finding says so
    if env_of(view.speaker_daemonset, "METALLB_ML_SECRET_KEY") is None:
        return []  # memberlist disabled in this install
    create = (
        f"the controller creates it at start (check its logs and its Role); or create it: "
        f"kubectl -n {view.namespace} create secret generic {view.secret_name} "
        '--from-literal=secretkey="$(openssl rand -base64 16)"'
    )
    if view.secret is None and unread(view, f"Secret {view.namespace}/{view.secret_name}"):
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
    if not (
        value_at(view.secret, "data", "secretkey")
        or value_at(view.secret, "stringData", "secretkey")
    ):
        return [
            Finding(
                "memberlist",
                f"Secret {view.namespace}/{view.secret_name} has no 'secretkey' entry",
                create.replace("create it", "recreate it"),
            )
        ]
    return []
