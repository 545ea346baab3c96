"""Acceptance of the controller process (issue 5), through real HTTP to the test API server."""

from __future__ import annotations

import json
import subprocess

import pytest

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for

from .conftest import NS, Component

LAYER2 = """
address-pools:
- name: small
  protocol: layer2
  addresses: [192.0.2.0/30]
"""


def set_config(api: ApiServer, text: str) -> None:
    try:
        cm = api.get("configmaps", "config", NS)
        cm["data"] = {"config": text}
        api.update(cm)
    except Exception:
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config", "namespace": NS},
                "data": {"config": text},
            }
        )


def service(name: str, ns: str = "apps", *, family: str = "IPv4", **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, **spec.pop("meta", {})},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": [family],
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": name},
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
    }


def ips(api: ApiServer, name: str, ns: str = "apps") -> list[str]:
    svc = api.get("services", name, ns)
    return [
        i.get("ip") for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
    ]


def all_ips(api: ApiServer, ns: str = "apps") -> dict[str, list[str]]:
    out = {}
    for svc in api.list("services", ns):
        out[svc["metadata"]["name"]] = [
            i.get("ip")
            for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
        ]
    return out


def events(api: ApiServer, ns: str, reason: str) -> list[dict]:
    return [e for e in api.list("events", ns) if e.get("reason") == reason]


def test_allocate_free_reuse_and_clear(api, start_controller):
    set_config(api, LAYER2)
    for i in range(5):
        api.create(service(f"s{i}"))
    ctl: Component = start_controller()
    wait_for(lambda: sum(1 for v in all_ips(api).values() if v) == 4, 20, what="4 allocations")
    got = all_ips(api)
    assert sorted(ip for v in got.values() for ip in v) == [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
    ]
    waiting = next(name for name, v in got.items() if not v)
    wait_for(lambda: events(api, "apps", "AllocationFailed"), 10, what="AllocationFailed event")
    # IPAllocated follows each successful status write, so it can trail the status the test saw.
    wait_for(lambda: len(events(api, "apps", "IPAllocated")) == 4, 10, what="4 IPAllocated events")
    ipalloc = events(api, "apps", "IPAllocated")[0]
    assert ipalloc["source"]["component"] == "metallb-controller"
    assert ipalloc["message"].startswith("Assigned IP [")

    # Deleting a Service frees its IP and the waiting Service gets it.
    holder = next(name for name, v in got.items() if v == ["192.0.2.1"])
    api.delete("services", holder, "apps")
    wait_for(
        lambda: ips(api, waiting) == ["192.0.2.1"],
        20,
        what="freed IP handed to the waiting Service",
    )

    # A Service that stops being a LoadBalancer loses its status.
    other = next(name for name, v in got.items() if v and name != holder)
    svc = api.get("services", other, "apps")
    svc["spec"]["type"] = "ClusterIP"
    api.update(svc)
    wait_for(lambda: ips(api, other) == [], 20, what="status cleared")
    assert ctl.metric("metallb_allocator_addresses_total", pool="small") == 4
    wait_for(lambda: ctl.metric("metallb_allocator_addresses_in_use_total", pool="small") == 3, 10)
    assert ctl.metric("metallb_allocator_services_allocated_total", pool="small") == 3
    assert ctl.metric("metallb_k8s_client_config_loaded_bool") == 1


def test_breaking_config_is_refused_then_fixed(api, start_controller):
    set_config(api, LAYER2)
    for i in range(3):
        api.create(service(f"s{i}"))
    ctl = start_controller()
    wait_for(lambda: all(all_ips(api).values()) and len(all_ips(api)) == 3, 20)
    before = all_ips(api)
    assert ctl.metric("metallb_k8s_client_config_stale_bool") == 0

    set_config(
        api, "address-pools:\n- name: other\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n"
    )
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 10, what="stale=1")
    refused = wait_for(lambda: events(api, NS, "ConfigRefused"), 10, what="ConfigRefused event")
    message = refused[0]["message"]
    assert refused[0]["type"] == "Warning"
    assert refused[0]["involvedObject"]["kind"] == "ConfigMap"
    for name, addrs in before.items():
        assert f"apps/{name} [{addrs[0]}]" in message
    assert all_ips(api) == before
    # New Services still allocate from the old config, which stays in force.
    api.create(service("late"))
    wait_for(lambda: ips(api, "late") == ["192.0.2.3"], 20, what="allocation under the old config")

    # Invalid YAML: refused with the field path, old config stays.
    set_config(api, "address-pools:\n- name: x\n  protocol: layer3\n  addresses: [192.0.2.0/30]\n")
    invalid = wait_for(lambda: events(api, NS, "InvalidConfig"), 10, what="InvalidConfig event")
    assert "address-pools[0].protocol" in invalid[0]["message"]

    set_config(api, LAYER2 + "- name: other\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n")
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 0, 10, what="stale=0")
    assert all_ips(api)["late"] == ["192.0.2.3"]
    assert ctl.metric("metallb_allocator_addresses_total", pool="other") == 8


def test_configmap_without_config_key_is_refused_and_no_config_is_ready_but_not_loaded(
    api, start_controller
):
    """Issue 11: /readyz means "caches synced", not "a config exists" (so `rollout status`
    before the config is written does not hang); "no config yet" shows in the log, an event
    and config_loaded_bool 0, and stale stays 0 while no ConfigMap was ever seen."""
    api.create(service("s"))
    ctl = start_controller()
    import urllib.error
    import urllib.request

    def readyz() -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{ctl.port}/readyz", timeout=5).status
        except urllib.error.HTTPError as e:
            return e.code

    wait_for(lambda: readyz() == 200, 20, what="ready without any ConfigMap")
    assert ctl.metric("metallb_k8s_client_config_stale_bool") == 0
    assert ctl.metric("metallb_k8s_client_config_loaded_bool") == 0
    waiting = wait_for(lambda: events(api, NS, "NoConfig"), 10, what="NoConfig event")
    assert waiting[0]["type"] == "Normal"
    assert waiting[0]["involvedObject"]["name"] == "config"
    assert any("no config yet" in str(e.get("msg", "")) for e in ctl.logs())
    assert ips(api, "s") == []
    # A misspelt key is refused with the field path (v0.12 would load an empty config).
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NS},
            "data": {"conifg": LAYER2},
        }
    )
    invalid = wait_for(lambda: events(api, NS, "InvalidConfig"), 10, what="InvalidConfig event")
    assert (
        "data.config: the ConfigMap has no `config` key (its data keys: conifg)"
        in (invalid[0]["message"])
    )
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 10)
    assert readyz() == 200 and ctl.metric("metallb_k8s_client_config_loaded_bool") == 0
    # An explicitly empty config is a valid (empty) configuration.
    cm = api.get("configmaps", "config", NS)
    cm["data"] = {"config": ""}
    api.update(cm)
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_loaded_bool") == 1, 20)
    assert ctl.metric("metallb_k8s_client_config_stale_bool") == 0
    assert readyz() == 200
    wait_for(lambda: events(api, "apps", "AllocationFailed"), 10)


def test_memberlist_secret_created_once_with_owner(api, start_controller):
    dep = api.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "controller", "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "metallb"}},
                "template": {
                    "metadata": {"labels": {"app": "metallb"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }
    )
    set_config(api, LAYER2)
    ctl = start_controller("--ml-secret-name", "memberlist", "--deployment", "controller")
    secret = wait_for(
        lambda: [s for s in api.list("secrets", NS) if s["metadata"]["name"] == "memberlist"], 20
    )[0]
    import base64

    key = base64.b64decode(secret["data"]["secretkey"]).decode()
    assert len(key) == 22 and not key.endswith("=")
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Deployment",
        "controller",
        dep["metadata"]["uid"],
    )
    ctl.kill()
    start_controller("--ml-secret-name", "memberlist", "--deployment", "controller").port  # noqa: B018
    assert len([s for s in api.list("secrets", NS) if s["metadata"]["name"] == "memberlist"]) == 1


def test_memberlist_secret_failure_exits_1(kubeconfig):
    proc = subprocess.run(
        [
            "metallb-py",
            "controller",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            NS,
            "--port",
            "0",
            "--ml-secret-name",
            "memberlist",
            "--deployment",
            "missing",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    line = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")][-2:]
    assert any("memberlist" in (e.get("error") or "") for e in line), proc.stdout


def test_no_namespace_is_a_clear_error(kubeconfig):
    proc = subprocess.run(
        ["metallb-py", "controller", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": __import__("os").environ["PATH"]},
    )
    assert proc.returncode == 1
    assert "namespace" in proc.stderr


@pytest.mark.slow
def test_restart_keeps_every_ip_of_1000_services(api, start_controller):
    set_config(
        api, "address-pools:\n- name: v6\n  protocol: layer2\n  addresses: ['2001:db8::/112']\n"
    )
    for i in range(1000):
        api.create(service(f"s{i:04d}", family="IPv6"))
    ctl = start_controller()
    wait_for(lambda: all(all_ips(api).values()), 120, interval=0.5, what="1000 allocations")
    before = all_ips(api)
    assert len({v[0] for v in before.values()}) == 1000
    ctl.kill()
    # New Services created while the controller is down must not steal anybody's IP.
    for i in range(20):
        api.create(service(f"new{i:02d}", family="IPv6"))
    ctl2 = start_controller()
    wait_for(lambda: all(all_ips(api).values()), 60, interval=0.5, what="new Services allocated")
    after = all_ips(api)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len({v[0] for v in after.values()}) == 1020
    assert ctl2.metric("metallb_allocator_addresses_in_use_total", pool="v6") == 1020


def unique_and_complete(api: ApiServer, n: int) -> bool:
    got = all_ips(api)
    addrs = [v[0] for v in got.values() if v]
    return len(got) == n and len(addrs) == n and len(set(addrs)) == n


@pytest.mark.slow
def test_faults_lose_or_duplicate_nothing_and_converge(api, start_controller):
    set_config(
        api, "address-pools:\n- name: v6\n  protocol: layer2\n  addresses: ['2001:db8::/120']\n"
    )
    for i in range(40):
        api.create(service(f"s{i:02d}", family="IPv6"))
    ctl = start_controller()
    wait_for(lambda: unique_and_complete(api, 40), 60, what="initial allocations")
    stable = all_ips(api)

    def check_and_grow(n: int, created: int) -> int:
        for i in range(created, created + 5):
            api.create(service(f"f{i:02d}", family="IPv6"))
        return created + 5

    created = 0
    # 1. every watch dropped, twice, while Services are created
    api.drop_watches(abrupt=True)
    created = check_and_grow(0, created)
    api.drop_watches()
    wait_for(lambda: unique_and_complete(api, 40 + created), 60, what="after dropped watches")
    # 2. history expired while the watches are down: 410 and a re-list
    api.outage(1.0)
    created = check_and_grow(0, created)
    api.expire_history()
    wait_for(lambda: unique_and_complete(api, 40 + created), 60, what="after 410")
    # 3. API down for 10 s (connection refused), Services created meanwhile
    api.outage(10.0)
    created = check_and_grow(0, created)
    wait_for(lambda: not api.outage_active(), 15)
    wait_for(lambda: unique_and_complete(api, 40 + created), 90, what="after 10 s outage")
    # 4. 409 storm on status writes, and a burst of 500s
    api.conflict_storm(30, resource="services", subresource="status")
    api.fail_next(10, 500, methods=("PUT",))
    created = check_and_grow(0, created)
    wait_for(lambda: unique_and_complete(api, 40 + created), 90, what="after 409/500 storms")
    after = all_ips(api)
    assert {k: v for k, v in after.items() if k in stable} == stable
    assert ctl.proc is not None and ctl.proc.poll() is None
    assert (ctl.metric("metallb_k8s_client_update_errors_total") or 0) > 0


def warnings_by_name(api: ApiServer, ns: str) -> dict[str, dict]:
    return {
        e["involvedObject"]["name"]: e for e in api.list("events", ns) if e["type"] == "Warning"
    }


def test_garbage_annotations_give_warnings_and_the_loop_keeps_going(api, start_controller):
    set_config(api, LAYER2)
    bad = {
        "bad-ips": {"metallb.universe.tf/loadBalancerIPs": "not-an-ip,,192.0.2.1,2001:db8::1,x"},
        "bad-pool": {"metallb.universe.tf/address-pool": "no-such-pool"},
        "bad-share": {"metallb.universe.tf/allow-shared-ip": "\x00\x01" * 50},
    }
    for name, notes in bad.items():
        api.create(service(name, meta={"annotations": notes}))
    api.create(service("good"))
    ctl = start_controller()
    wait_for(lambda: ips(api, "good"), 20, what="the good Service allocated")
    wait_for(
        lambda: warnings_by_name(api, "apps").keys() >= {"bad-ips", "bad-pool"},
        20,
        what="Warnings on the bad Services",
    )
    by_name = warnings_by_name(api, "apps")
    assert by_name["bad-pool"]["reason"] == "AllocationFailed"
    assert 'unknown pool "no-such-pool"' in by_name["bad-pool"]["message"]
    assert by_name["bad-ips"]["reason"] == "AllocationFailed"
    assert ips(api, "bad-ips") == [] and ips(api, "bad-pool") == []
    # The loop is alive: a new Service still gets an address.
    api.create(service("later"))
    wait_for(lambda: ips(api, "later"), 20, what="allocation after the garbage")
    assert ctl.proc is not None and ctl.proc.poll() is None
