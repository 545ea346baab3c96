"""`diagnose` on hand-built views (pure): each check, with a view that has the problem and one
that does not. Expected lines are written out here, not computed with doctor's helpers."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_lab.apiserver.selectors import parse_label_selector
from metallb_py.doctor import ClusterView, Finding, IgnoredNodes, Severity, diagnose, exit_code

ROOT = Path(__file__).resolve().parents[2]
NS = "metallb-system"
Obj = dict[str, Any]

CONFIG = """\
address-pools:
- {name: lan, protocol: layer2, addresses: [192.0.2.240/28]}
"""
READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


def manifest(kind: str) -> Obj:
    for obj in yaml.safe_load_all((ROOT / "manifests" / "metallb.yaml").read_text()):
        if obj and obj["kind"] == kind:
            return dict(obj)
    raise AssertionError(kind)


def node(name: str, *addresses: tuple[str, str], labels: Obj | None = None, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": t, "address": a} for t, a in addresses],
        },
    }


def pod(name: str, status: Obj, node_name: str = "", created: str = "") -> Obj:
    meta: Obj = {"name": name, "namespace": NS}
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "spec": {"nodeName": node_name}, "status": status}


def store(text: str, digest: str | None = "auto") -> Obj:
    annotations = {}
    if digest == "auto":
        annotations["metallb-py.io/config-sha256"] = hashlib.sha256(text.encode()).hexdigest()
    elif digest is not None:
        annotations["metallb-py.io/config-sha256"] = digest
    return {
        "metadata": {"name": "config-accepted", "namespace": NS, "annotations": annotations},
        "data": {"config": text},
    }


def event(reason: str, message: str, stamp: str, **extra: Any) -> Obj:
    involved = {"kind": "ConfigMap", "name": "config", "namespace": NS}
    involved.update(extra.pop("involved", {}))
    return {
        "metadata": {"name": f"config.{stamp}", "namespace": NS},
        "involvedObject": involved,
        "type": "Warning",
        "reason": reason,
        "message": message,
        "lastTimestamp": stamp,
        "source": {"component": extra.pop("component", "metallb-controller")},
        **extra,
    }


def healthy() -> ClusterView:
    """A cluster `diagnose` has nothing to say about: two nodes with speakers, one controller,
    the config in force."""
    deployment = manifest("Deployment")
    deployment["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
    return ClusterView(
        configmap={
            "metadata": {"name": "config", "namespace": NS, "resourceVersion": "7"},
            "data": {"config": CONFIG},
        },
        accepted_configmap=store(CONFIG),
        secret={"data": {"secretkey": "c2VjcmV0"}},
        speaker_daemonset=manifest("DaemonSet"),
        controller_deployment=deployment,
        controller_pods=[pod("controller-1", READY)],
        speaker_pods=[pod("speaker-a", READY, "node-a"), pod("speaker-b", READY, "node-b")],
        nodes=[
            node("node-a", ("InternalIP", "192.0.2.10"), ("Hostname", "node-a")),
            node("node-b", ("InternalIP", "192.0.2.11"), ("ExternalIP", "203.0.113.7")),
        ],
    )


def lines(view: ClusterView, ignore: IgnoredNodes | None = None) -> list[str]:
    return [str(f) for f in diagnose(view, ignore)]


def test_healthy_view_has_no_findings():
    assert lines(healthy()) == []


# --- severities and the exit code ----------------------------------------------------------


def test_only_errors_make_doctor_exit_1():
    warning = Finding("x", "p", "f", Severity.WARNING)
    info = Finding("x", "p", "f", Severity.INFO)
    error = Finding("x", "p", "f")
    assert exit_code([]) == 0
    assert exit_code([warning, info]) == 0
    assert exit_code([warning, error, info]) == 1
    assert str(error) == "x: p. Fix: f"
    assert str(warning) == "x (warning): p. Fix: f"
    assert str(info) == "x (info): p. Fix: f"


# --- controller Deployment -----------------------------------------------------------------


def test_controller_deployment_missing():
    view = healthy()
    view.controller_deployment = None
    view.controller_pods = []
    assert lines(view) == [
        "controller: Deployment metallb-system/controller does not exist: nothing allocates"
        " addresses (new LoadBalancer Services stay <pending>). Fix: install metallb-py: kubectl"
        " apply -f manifests/ (docs/install.md)"
    ]


def test_controller_deployment_unreadable_is_an_access_finding_only():
    view = healthy()
    view.controller_deployment = None
    view.unreadable = ["Deployment metallb-system/controller: HTTP 403 Forbidden"]
    assert [f.check for f in diagnose(view)] == ["access"]


def test_controller_scaled_to_zero():
    view = healthy()
    assert view.controller_deployment is not None
    view.controller_deployment["spec"]["replicas"] = 0
    view.controller_deployment["status"] = {}
    view.controller_pods = []
    assert lines(view) == [
        "controller: Deployment metallb-system/controller is scaled to 0 replicas: nothing"
        " allocates addresses (new LoadBalancer Services stay <pending>). Fix: kubectl -n"
        " metallb-system scale deployment controller --replicas=1"
    ]


@pytest.mark.parametrize("replicas", [None, 1])
def test_controller_one_replica_is_fine(replicas: int | None):
    view = healthy()
    assert view.controller_deployment is not None
    view.controller_deployment["spec"]["replicas"] = replicas
    assert lines(view) == []


def test_controller_more_than_one_replica():
    view = healthy()
    assert view.controller_deployment is not None
    view.controller_deployment["spec"]["replicas"] = 3
    (line,) = lines(view)
    assert line.startswith(
        "controller: Deployment metallb-system/controller asks for 3 replicas, but MetalLB's"
        " controller must run as one replica: "
    )
    assert line.endswith(
        ". Fix: kubectl -n metallb-system scale deployment controller --replicas=1"
    )


def not_available(view: ClusterView, *pods: Obj) -> None:
    assert view.controller_deployment is not None
    view.controller_deployment["status"] = {"replicas": 1, "unavailableReplicas": 1}
    view.controller_pods = list(pods)


def waiting(reason: str, message: str = "", last: Obj | None = None) -> Obj:
    status: Obj = {"state": {"waiting": {"reason": reason, "message": message}}}
    if last:
        status["lastState"] = {"terminated": last}
    return {"phase": "Pending", "containerStatuses": [{"name": "controller", **status}]}


def test_controller_image_pull_backoff():
    view = healthy()
    not_available(
        view,
        pod("controller-old", waiting("ErrImagePull", "old"), created="2024-05-01T10:00:00Z"),
        pod(
            "controller-new",
            waiting("ImagePullBackOff", 'Back-off pulling image "quay.io/x:v9"'),
            created="2024-05-01T11:00:00Z",
        ),
    )
    assert lines(view) == [
        "controller: Deployment metallb-system/controller has no available replica, so nothing"
        " allocates addresses (new LoadBalancer Services stay <pending>) and config changes are"
        ' not taken: pod controller-new is ImagePullBackOff (Back-off pulling image "quay.io/x:v9").'
        " Fix: the image cannot be pulled: check the image of Deployment"
        " metallb-system/controller and that the nodes can reach its registry (and have its"
        " imagePullSecrets); kubectl -n metallb-system describe pod controller-new shows the pull"
        " error"
    ]


def test_controller_crash_loop_names_the_last_exit():
    view = healthy()
    last = {"reason": "Error", "exitCode": 2}
    not_available(view, pod("controller-1", waiting("CrashLoopBackOff", "back-off 5m0s", last)))
    (line,) = lines(view)
    assert "pod controller-1 is CrashLoopBackOff (back-off 5m0s); last exit: Error, code 2." in line
    assert line.endswith(
        "Fix: the container keeps exiting: kubectl -n metallb-system logs controller-1 --previous"
        " says why"
    )


def test_controller_pending_unschedulable():
    view = healthy()
    status = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ],
    }
    not_available(view, pod("controller-1", status))
    (line,) = lines(view)
    assert (
        "pod controller-1 is Pending: Unschedulable (0/3 nodes are available: 3 Insufficient"
        " cpu.). Fix: the scheduler cannot place it (its message says why): free capacity on the"
        " nodes or relax the nodeSelector, affinity or tolerations of Deployment"
        " metallb-system/controller"
    ) in line


def test_controller_running_but_not_ready():
    view = healthy()
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    not_available(view, pod("controller-1", status))
    (line,) = lines(view)
    assert line.endswith(
        "pod controller-1 is Running but not Ready. Fix: its readiness check (/readyz) fails:"
        " kubectl -n metallb-system logs controller-1 says why"
    )


def test_controller_without_pods_quotes_the_replica_failure():
    view = healthy()
    not_available(view)
    assert view.controller_deployment is not None
    view.controller_deployment["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "controller-x" is forbidden: exceeded quota: pods',
        }
    ]
    assert lines(view) == [
        "controller: Deployment metallb-system/controller has no available replica and no"
        ' controller pod exists (pods "controller-x" is forbidden: exceeded quota: pods), so'
        " nothing allocates addresses (new LoadBalancer Services stay <pending>) and config"
        " changes are not taken. Fix: kubectl -n metallb-system describe deployment controller"
        " and kubectl -n metallb-system get events say what keeps the pod from being created or"
        " started (quota, admission, ReplicaSet)"
    ]


def test_controller_available_by_status_alone_is_fine():
    view = healthy()
    view.controller_pods = []  # e.g. not listed; the Deployment says one is available
    assert lines(view) == []


def test_controller_ready_pod_with_stale_status_is_fine():
    view = healthy()
    assert view.controller_deployment is not None
    view.controller_deployment["status"] = {}
    assert lines(view) == []


# --- the accepted config (refused / stale) -------------------------------------------------

NEW = CONFIG.replace("192.0.2.240/28", "192.0.2.224/28")
REFUSED = (
    "config refused, previous config kept: 1 Service(s) would lose their IPs: default/web"
    " [192.0.2.241]: no pool holds it"
)


def with_live(text: str) -> ClusterView:
    view = healthy()
    assert view.configmap is not None
    view.configmap["data"]["config"] = text
    return view


def test_config_in_force_is_silent():
    view = healthy()
    view.config_events = [event("ConfigRefused", REFUSED, "2024-05-01T10:00:00Z")]
    assert lines(view) == []  # an old refusal, but the live text is the accepted one


def test_no_store_yet_is_silent():
    view = with_live(NEW)
    view.accepted_configmap = None
    assert lines(view) == []


def test_refused_config_quotes_the_latest_event():
    view = with_live(NEW)
    view.config_events = [
        event("ConfigRefused", REFUSED, "2024-05-01T10:05:00Z", involved={"resourceVersion": "7"}),
        event("ConfigRefused", "older", "2024-05-01T09:00:00Z", involved={"resourceVersion": "7"}),
        event("InvalidConfig", "other object", "2024-05-01T11:00:00Z", involved={"name": "x"}),
        event("ConfigRefused", "not ours", "2024-05-01T11:00:00Z", component="someone-else"),
        {**event("ConfigRefused", "normal", "2024-05-01T11:00:00Z"), "type": "Normal"},
    ]
    assert lines(view) == [
        "config: ConfigMap metallb-system/config is not in force: its config differs from the"
        " one the controller accepted last (ConfigMap metallb-system/config-accepted), which"
        " MetalLB still runs; latest ConfigRefused event (2024-05-01T10:05:00Z): " + REFUSED + "."
        " Fix: the ConfigRefused event names the Services that would lose their IPs under the new"
        " config; metallb-py plan --live --config NEW (NEW: the config you want) lists them"
        " before you apply; move those Services to addresses the new config keeps (or delete"
        " them), or change the config so that it keeps their IPs"
    ]
    assert exit_code(diagnose(view)) == 1


def test_refusal_recorded_for_an_earlier_version_says_so():
    view = with_live(NEW)
    view.config_events = [
        event("ConfigRefused", REFUSED, "2024-05-01T10:05:00Z", involved={"resourceVersion": "5"})
    ]
    (line,) = lines(view)
    assert f"{REFUSED} (recorded for an earlier version of the ConfigMap). Fix:" in line


def test_invalid_config_event_points_at_config_check():
    view = with_live(NEW)
    view.config_events = [event("InvalidConfig", "config rejected: x", "2024-05-01T10:05:00Z")]
    (line,) = lines(view)
    assert "latest InvalidConfig event (2024-05-01T10:05:00Z): config rejected: x. Fix:" in line
    assert "metallb-py config check cm.yaml lists the problems" in line


def test_stale_without_event_while_the_controller_runs():
    view = with_live(NEW)
    (line,) = lines(view)
    assert (
        "which MetalLB still runs; no ConfigRefused or InvalidConfig event explains it (a config"
        " changed seconds ago may still be in the controller's queue: run doctor again). Fix:"
    ) in line


def test_stale_while_the_controller_is_down():
    view = with_live(NEW)
    not_available(view)
    found = lines(view)
    assert [line.split(":", 1)[0] for line in found] == ["config", "controller"]
    assert "; the controller is not running, so nothing takes the new config. Fix:" in found[0]


def test_stale_notes_unreadable_events():
    view = with_live(NEW)
    view.events_unreadable = "HTTP 403 Forbidden"
    (line,) = lines(view)
    assert "(the ConfigMap's events cannot be read: HTTP 403 Forbidden). Fix:" in line


def test_invalid_live_config_is_reported_once():
    view = with_live(CONFIG.replace("layer2", "layer3"))
    view.config_events = [event("InvalidConfig", "config rejected", "2024-05-01T10:05:00Z")]
    assert [f.check for f in diagnose(view)] == ["config"]
    assert "is not a valid config" in lines(view)[0]


def test_live_configmap_without_config_key_is_refused_not_empty():
    view = healthy()
    assert view.configmap is not None
    view.configmap["data"] = {"conifg": CONFIG}
    assert lines(view) == [
        "config: ConfigMap metallb-system/config has no 'config' key (its data keys: conifg): the"
        " controller refuses it like an invalid config and keeps its previous config (or none)."
        " Fix: put the MetalLB config under data.config (a YAML string); an explicitly empty"
        ' config: "" is the empty configuration'
    ]
    view.accepted_configmap = store("")
    assert [f.check for f in diagnose(view)] == ["config"]  # not also "not in force"


def test_explicitly_empty_config_against_the_store():
    view = with_live("")
    assert [f.check for f in diagnose(view)] == ["config", "config"]
    assert "defines no address pools" in lines(view)[0]
    assert "is not in force" in lines(view)[1]
    view.accepted_configmap = store("")
    assert [f.check for f in diagnose(view)] == ["config"]


@pytest.mark.parametrize(
    ("digest", "what"),
    [
        (None, "has no metallb-py.io/config-sha256 annotation"),
        ("0" * 64, "has a metallb-py.io/config-sha256 annotation that does not match its text"),
    ],
)
def test_hand_edited_store_is_a_warning(digest: str | None, what: str):
    view = with_live(NEW)
    view.accepted_configmap = store(CONFIG, digest)
    assert lines(view) == [
        "config (warning): ConfigMap metallb-system/config-accepted, where the controller keeps"
        f" the config it accepted last, {what}: it was edited by hand or by a tool, so doctor"
        " cannot tell whether ConfigMap metallb-system/config is in force. Fix: do not edit or"
        " apply config-accepted (leave it out of GitOps and kubectl apply sets); a running"
        " controller rewrites it at once and treats it as absent until then; if it stays like"
        " this, the controller's logs say why it cannot write it"
    ]
    assert exit_code(diagnose(view)) == 0


def test_store_checksum_is_of_the_utf8_text():
    text = CONFIG + "# café\n"
    view = with_live(text)
    view.accepted_configmap = store(text, hashlib.sha256(text.encode("utf-8")).hexdigest().upper())
    assert lines(view) == []


def test_store_with_a_lone_surrogate_does_not_crash():
    text = CONFIG + "# \ud800\n"  # JSON "\ud800" decodes to this; the controller hashes it too
    view = healthy()
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    view.accepted_configmap = store(text, digest)
    (finding,) = diagnose(view)  # checksum recognised: the texts differ, not "edited by hand"
    assert finding.severity is Severity.ERROR
    assert "is not in force" in finding.problem


def test_store_name_follows_the_config_name():
    view = with_live(NEW)
    view.config_name = "metallb"
    assert view.accepted_configmap is not None
    view.accepted_configmap["metadata"]["name"] = "metallb-accepted"
    view.config_events = [
        event("ConfigRefused", REFUSED, "2024-05-01T10:05:00Z", involved={"name": "metallb"})
    ]
    (line,) = lines(view)
    assert line.startswith(
        "config: ConfigMap metallb-system/metallb is not in force: its config differs from the one"
        " the controller accepted last (ConfigMap metallb-system/metallb-accepted)"
    )
    assert REFUSED in line


# --- pools vs node addresses ---------------------------------------------------------------


def with_pools(text: str) -> ClusterView:
    view = with_live(text)
    view.accepted_configmap = store(text)
    return view


def test_pool_holding_a_node_internal_ip():
    view = with_pools(CONFIG.replace("192.0.2.240/28", "192.0.2.0/29"))  # node-b's .11 is not in it
    view.nodes[0]["status"]["addresses"][0]["address"] = "192.0.2.5"
    assert lines(view) == [
        "address-pools: pool 'lan' contains node addresses: 192.0.2.5 (InternalIP of node node-a):"
        " the allocator can hand a node's own address to a Service, which then takes the node's"
        " traffic (and in layer2 two machines answer ARP/NDP for it). Fix: take them out of pool"
        " 'lan': replace 192.0.2.0/29 with 192.0.2.0-192.0.2.4, 192.0.2.6-192.0.2.7"
    ]


def test_pool_holding_node_external_ip_and_ranges():
    pools = """\
address-pools:
- name: mixed
  protocol: bgp
  addresses: [203.0.113.0-203.0.113.7, 198.51.100.1/32, 198.51.100.16/28]
"""
    view = with_pools(pools)
    view.nodes.append(node("node-c", ("InternalIP", "198.51.100.1"), ("ExternalIP", "203.0.113.0")))
    view.speaker_pods.append(pod("speaker-c", READY, "node-c"))
    assert lines(view) == [
        "address-pools: pool 'mixed' contains node addresses: 203.0.113.7 (ExternalIP of node"
        " node-b), 198.51.100.1 (InternalIP of node node-c), 203.0.113.0 (ExternalIP of node"
        " node-c): the allocator can hand a node's own address to a Service, which then takes the"
        " node's traffic (and in layer2 two machines answer ARP/NDP for it). Fix: take them out of"
        " pool 'mixed': replace 203.0.113.0-203.0.113.7 with 203.0.113.1-203.0.113.6; remove"
        " 198.51.100.1/32"
    ]


def test_pool_holding_no_node_address_is_fine():
    view = healthy()  # nodes 192.0.2.10/.11, pool 192.0.2.240/28: same /24, no address shared
    assert lines(view) == []


def test_avoid_buggy_ips_pool_never_hands_out_a_dot_zero_node_address():
    text = CONFIG.replace("192.0.2.240/28", "192.0.2.0/29")
    view = with_pools(text.replace("addresses:", "avoid-buggy-ips: true, addresses:"))
    view.nodes[0]["status"]["addresses"][0]["address"] = "192.0.2.0"
    assert lines(view) == []
    view = with_pools(text)
    view.nodes[0]["status"]["addresses"][0]["address"] = "192.0.2.0"
    (line,) = lines(view)
    assert "192.0.2.0 (InternalIP of node node-a)" in line
    assert line.endswith("replace 192.0.2.0/29 with 192.0.2.1-192.0.2.7")


def test_layer2_pool_off_the_nodes_subnets_is_a_warning():
    view = with_pools(CONFIG.replace("192.0.2.240/28", "198.51.100.0/28"))
    assert lines(view) == [
        "address-pools (warning): layer2 pool 'lan' (198.51.100.0/28) shares no /24 with any node"
        " InternalIP (nodes in 192.0.2.0/24): layer2 answers ARP/NDP on the nodes' own links, so"
        " these addresses are reachable only if they are in the nodes' subnet; doctor sees node"
        " addresses, not prefix lengths, so this is fine if that subnet is wider than /24 and"
        " holds them. Fix: if the pool is not on the nodes' subnet, take its addresses from that"
        " subnet or announce it with protocol: bgp; if it is, nothing to do"
    ]
    assert exit_code(diagnose(view)) == 0


def test_external_ips_do_not_count_as_the_nodes_subnet():
    view = with_pools(CONFIG.replace("192.0.2.240/28", "203.0.113.16/28"))
    (finding,) = diagnose(view)  # node-b's ExternalIP 203.0.113.7 is in that /24
    assert finding.severity is Severity.WARNING


def test_bgp_pool_off_the_nodes_subnets_is_fine():
    peers = "peers: [{peer-address: 203.0.113.1, peer-asn: 64501, my-asn: 64500}]\n"
    bgp = CONFIG.replace("layer2", "bgp").replace("192.0.2.240/28", "198.51.100.0/28")
    assert lines(with_pools(peers + bgp)) == []


def test_layer2_pool_sharing_part_of_a_nodes_24_is_fine():
    view = with_pools(CONFIG.replace("192.0.2.240/28", "192.0.2.0/25"))
    view.nodes = [node("node-a", ("InternalIP", "192.0.2.200"))]
    view.speaker_pods = [pod("speaker-a", READY, "node-a")]
    assert lines(view) == []


def test_layer2_ipv6_pool_against_the_nodes_64():
    text = CONFIG.replace("192.0.2.240/28", "2001:db8:0:1::100/120")
    view = with_pools(text)
    assert lines(view) == []  # no node has an IPv6 InternalIP: nothing to compare with
    view.nodes[0]["status"]["addresses"].append({"type": "InternalIP", "address": "2001:db8::10"})
    (line,) = lines(view)
    assert line.startswith(
        "address-pools (warning): layer2 pool 'lan' (2001:db8:0:1::100/120) shares no /64 with"
        " any node InternalIP (nodes in 2001:db8::/64)"
    )
    view.nodes[1]["status"]["addresses"].append(
        {"type": "InternalIP", "address": "2001:db8:0:1::2"}
    )
    assert lines(view) == []


# --- kube-proxy's config key ---------------------------------------------------------------

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster: {server: https://192.0.2.1:6443}
  name: default
"""


def proxy_config(mode: str, strict: bool | None, cluster_cidr: str = "") -> str:
    text = f"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: {mode}\n"
    if strict is not None:
        text += f"ipvs:\n  strictARP: {str(strict).lower()}\n"
    if cluster_cidr:
        text += f"clusterCIDR: {cluster_cidr}\n"
    return text


def kube_proxy(view: ClusterView, data: dict[str, str], config_flag: str | None = None) -> None:
    view.kube_proxy_configmap = {"data": data}
    command = ["/usr/local/bin/kube-proxy", "--hostname-override=$(NODE_NAME)"]
    if config_flag:
        command.insert(1, config_flag)
    view.kube_proxy_daemonset = {
        "spec": {"template": {"spec": {"containers": [{"name": "kube-proxy", "command": command}]}}}
    }


def strict_arp_lines(view: ClusterView) -> list[str]:
    return [line for line in lines(view) if line.startswith("kube-proxy:")]


def test_kubeadm_kube_proxy_reads_config_conf_not_kubeconfig_conf():
    view = healthy()
    kube_proxy(
        view,
        {"config.conf": proxy_config("ipvs", False), "kubeconfig.conf": KUBECONFIG},
        "--config=/var/lib/kube-proxy/config.conf",
    )
    (line,) = strict_arp_lines(view)
    assert "(ConfigMap kube-system/kube-proxy config.conf)" in line
    kube_proxy(view, {"config.conf": proxy_config("ipvs", True), "kubeconfig.conf": KUBECONFIG})
    assert strict_arp_lines(view) == []


def test_kube_proxy_key_named_by_the_config_flag_wins():
    view = healthy()
    data = {"config.conf": proxy_config("iptables", None), "proxy.yaml": proxy_config("ipvs", None)}
    kube_proxy(view, data, "--config=/etc/kube-proxy/proxy.yaml")
    (line,) = strict_arp_lines(view)
    assert "(ConfigMap kube-system/kube-proxy proxy.yaml)" in line
    kube_proxy(view, data)  # no flag: config.conf
    assert strict_arp_lines(view) == []


def test_kube_proxy_flag_with_a_separate_value():
    view = healthy()
    kube_proxy(view, {"a": proxy_config("iptables", None), "b": proxy_config("ipvs", None)})
    assert view.kube_proxy_daemonset is not None
    container = view.kube_proxy_daemonset["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--config", "/var/lib/kube-proxy/b"]
    (line,) = strict_arp_lines(view)
    assert "(ConfigMap kube-system/kube-proxy b)" in line


def test_kube_proxy_only_typed_key_is_used():
    view = healthy()
    kube_proxy(view, {"kubeconfig.conf": KUBECONFIG, "custom": proxy_config("ipvs", False)})
    (line,) = strict_arp_lines(view)
    assert "(ConfigMap kube-system/kube-proxy custom)" in line


def test_kube_proxy_two_typed_keys_without_flag_is_unknown():
    view = healthy()
    kube_proxy(view, {"one": proxy_config("ipvs", False), "two": proxy_config("ipvs", True)})
    assert strict_arp_lines(view) == []


def test_kubeconfig_conf_is_never_read_even_if_named():
    view = healthy()
    ipvs_kubeconfig = KUBECONFIG + "mode: ipvs\n"
    kube_proxy(view, {"kubeconfig.conf": ipvs_kubeconfig}, "--config=/x/kubeconfig.conf")
    assert strict_arp_lines(view) == []


def test_cluster_cidr_comes_from_the_chosen_key():
    view = with_pools(CONFIG.replace("192.0.2.240/28", "192.0.2.128/25"))
    data = {
        "config.conf": proxy_config("iptables", None, "192.0.2.0/24"),
        "kubeconfig.conf": KUBECONFIG,
    }
    kube_proxy(view, data)
    (line,) = lines(view)
    assert line.startswith(
        "address-pools: pool 'lan' (192.0.2.128/25) overlaps the Pod network (kube-proxy"
        " clusterCIDR 192.0.2.0/24)"
    )


# --- speakers kept off nodes on purpose ----------------------------------------------------


def speaker_spec(view: ClusterView) -> Obj:
    assert view.speaker_daemonset is not None
    spec: Obj = view.speaker_daemonset["spec"]["template"]["spec"]
    return spec


def kontena() -> ClusterView:
    """Speakers on workers only (the Kontena addon's node_selector), one control-plane node."""
    view = healthy()
    view.speaker_daemonset = copy.deepcopy(view.speaker_daemonset)
    speaker_spec(view)["nodeSelector"] = {"node-role.kubernetes.io/worker": ""}
    for n in view.nodes:
        n["metadata"]["labels"]["node-role.kubernetes.io/worker"] = ""
    view.nodes.append(node("cp-1", ("InternalIP", "192.0.2.2")))
    return view


def test_speakers_on_workers_only_is_one_info_line():
    view = kontena()
    view.nodes.append(node("cp-2", ("InternalIP", "192.0.2.3")))
    assert lines(view) == [
        "speaker (info): 2 Ready node(s) run no speaker because the speaker DaemonSet keeps it off"
        " them, so they never announce: cp-1, cp-2 (the speaker DaemonSet's nodeSelector"
        " node-role.kubernetes.io/worker= does not match it). Fix: nothing if that is intended;"
        " to run speakers there, add a toleration or widen the DaemonSet's nodeSelector or node"
        " affinity; --ignore-node NAME or --ignore-node-selector SELECTOR hides this line"
    ]
    assert exit_code(diagnose(view)) == 0


def test_worker_without_speaker_is_still_an_error():
    view = kontena()
    view.speaker_pods = view.speaker_pods[:1]
    found = diagnose(view)
    assert [(f.check, f.severity) for f in found] == [
        ("speaker", Severity.ERROR),
        ("speaker", Severity.INFO),
    ]
    assert str(found[0]).startswith("speaker: Ready node node-b runs no speaker pod though")


def test_ignore_node_flags_silence_the_info_line():
    view = kontena()
    assert lines(view, IgnoredNodes(frozenset({"cp-1"}))) == []
    selector = parse_label_selector("!node-role.kubernetes.io/worker")
    assert lines(view, IgnoredNodes(selector=selector)) == []


def test_ignored_nodes_are_not_errors_either():
    view = healthy()
    view.speaker_pods = []
    assert len(lines(view)) == 2
    assert lines(view, IgnoredNodes(frozenset({"node-a", "node-b"}))) == []
    selector = parse_label_selector("kubernetes.io/os=linux")
    assert lines(view, IgnoredNodes(selector=selector)) == []
    selector = parse_label_selector("kubernetes.io/os=windows")
    assert len(lines(view, IgnoredNodes(selector=selector))) == 2


def with_affinity(view: ClusterView, *terms: Obj) -> None:
    speaker_spec(view)["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, operator: str, *values: str) -> Obj:
    return {"key": key, "operator": operator, "values": list(values)}


LABELS = {"zone": "a", "cores": "8", "gpu": "yes"}


@pytest.mark.parametrize(
    ("term", "runs"),
    [
        ({"matchExpressions": [expr("zone", "In", "a", "b")]}, True),
        ({"matchExpressions": [expr("zone", "In", "b")]}, False),
        ({"matchExpressions": [expr("zone", "NotIn", "b")]}, True),
        ({"matchExpressions": [expr("zone", "NotIn", "a")]}, False),
        ({"matchExpressions": [expr("rack", "NotIn", "a")]}, True),  # absent label: not in
        ({"matchExpressions": [expr("gpu", "Exists")]}, True),
        ({"matchExpressions": [expr("rack", "Exists")]}, False),
        ({"matchExpressions": [expr("rack", "DoesNotExist")]}, True),
        ({"matchExpressions": [expr("gpu", "DoesNotExist")]}, False),
        ({"matchExpressions": [expr("cores", "Gt", "4")]}, True),
        ({"matchExpressions": [expr("cores", "Gt", "8")]}, False),
        ({"matchExpressions": [expr("cores", "Lt", "16")]}, True),
        ({"matchExpressions": [expr("cores", "Lt", "8")]}, False),
        ({"matchExpressions": [expr("zone", "Gt", "1")]}, False),  # not a number
        ({"matchExpressions": [expr("cores", "Gt", "x")]}, False),  # malformed bound
        ({"matchExpressions": [expr("zone", "Near", "a")]}, False),  # unknown operator
        ({"matchExpressions": [expr("zone", "In", "a"), expr("gpu", "DoesNotExist")]}, False),
        ({"matchFields": [expr("metadata.name", "In", "w-1")]}, True),
        ({"matchFields": [expr("metadata.name", "NotIn", "w-1")]}, False),
        ({"matchFields": [expr("metadata.uid", "In", "w-1")]}, False),
        ({"matchFields": [expr("metadata.name", "Exists")]}, False),
        ({"matchExpressions": [expr("zone", "In", "a")], "matchFields": []}, True),
        ({}, False),  # an empty term matches nothing
    ],
)
def test_required_node_affinity(term: Obj, runs: bool):
    view = healthy()
    view.nodes.append(node("w-1", ("InternalIP", "192.0.2.12"), labels=LABELS))
    with_affinity(view, term)
    # node-a and node-b carry none of these labels: whether they match depends on the term
    view.nodes = [n for n in view.nodes if n["metadata"]["name"] == "w-1"]
    found = diagnose(view)
    if runs:
        assert [(f.check, f.severity) for f in found] == [("speaker", Severity.ERROR)]
        assert "Ready node w-1 runs no speaker pod though" in str(found[0])
    else:
        assert [(f.check, f.severity) for f in found] == [("speaker", Severity.INFO)]
        assert "w-1 (the speaker DaemonSet's required node affinity does not match it)" in str(
            found[0]
        )


def test_node_affinity_terms_are_ored():
    view = healthy()
    view.nodes.append(node("w-1", ("InternalIP", "192.0.2.12"), labels=LABELS))
    with_affinity(
        view,
        {"matchExpressions": [expr("zone", "In", "z")]},
        {"matchFields": [expr("metadata.name", "In", "node-a", "node-b", "w-1")]},
    )
    (line,) = lines(view)
    assert line.startswith("speaker: Ready node w-1 runs no speaker pod though")


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_untolerated_taint_is_info(effect: str):
    view = healthy()
    view.nodes.append(node("gpu-1", taints=[{"key": "gpu", "value": "x", "effect": effect}]))
    (finding,) = diagnose(view)
    assert finding.severity is Severity.INFO
    assert f"gpu-1 (the speaker DaemonSet does not tolerate its taint gpu:{effect})" in str(finding)


def test_prefer_no_schedule_taint_does_not_keep_the_speaker_off():
    view = healthy()
    view.nodes.append(node("n-1", taints=[{"key": "x", "effect": "PreferNoSchedule"}]))
    (finding,) = diagnose(view)
    assert finding.severity is Severity.ERROR


@pytest.mark.parametrize(
    "taint",
    [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},  # cordoned
        {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"},  # hostNetwork
    ],
)
def test_taints_daemonsets_tolerate_by_default(taint: Obj):
    view = healthy()
    view.nodes.append(node("n-1", taints=[taint]))
    (finding,) = diagnose(view)
    assert finding.severity is Severity.ERROR  # the speaker should run there, and does not
    assert "Ready node n-1 runs no speaker pod though" in str(finding)


def test_network_unavailable_keeps_a_pod_network_daemonset_off():
    view = healthy()
    speaker_spec(view)["hostNetwork"] = False
    view.nodes.append(
        node(
            "n-1",
            taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}],
        )
    )
    (finding,) = diagnose(view)
    assert finding.severity is Severity.INFO


def test_failing_speaker_on_an_excluded_node_is_still_reported():
    view = kontena()
    waiting_pod = pod("speaker-cp", waiting("CrashLoopBackOff", "back-off"), "cp-1")
    view.speaker_pods.append(waiting_pod)
    (line,) = lines(view)
    assert line.startswith("speaker: Ready node cp-1 has no running speaker: pod speaker-cp is")
    assert line.endswith("kubectl -n metallb-system logs speaker-cp --previous says why")
