"""Nothing lost across restarts (issue 11): a refused config stays refused after the controller
is SIGKILLed, the last accepted config is kept in the cluster, and a first install never clears
an IP a Service already holds.

The expectations are written out here (IP sets read from the API before and after, texts of the
configs), never computed with the controller's own code.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from metallb_lab.apiserver import ApiServer
from metallb_lab.netns import wait_for

from .conftest import NS
from .test_controller import all_ips, events, ips, service, set_config

pytestmark = pytest.mark.slow

STORE = "config-accepted"
CHECKSUM = "metallb-py.io/config-sha256"
OLD_AND_NEW = """
address-pools:
- name: old
  protocol: layer2
  addresses: ["2001:db8:a::/118"]
- name: new
  protocol: layer2
  addresses: ["2001:db8:b::/118"]
"""
ONLY_NEW = """
address-pools:
- name: new
  protocol: layer2
  addresses: ["2001:db8:b::/118"]
"""
ONLY_OLD = """
address-pools:
- name: old
  protocol: layer2
  addresses: ["2001:db8:a::/118"]
"""
V4 = """
address-pools:
- name: v4
  protocol: layer2
  addresses: [198.51.100.0/28]
"""


def stored(api: ApiServer) -> dict[str, Any] | None:
    try:
        return api.get("configmaps", STORE, NS)
    except Exception:
        return None


def checksum_of_store(api: ApiServer) -> str | None:
    cm = stored(api)
    return None if cm is None else cm["metadata"].get("annotations", {}).get(CHECKSUM)


def stored_text(api: ApiServer) -> str | None:
    cm = stored(api)
    return None if cm is None else (cm.get("data") or {}).get("config")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_services(api: ApiServer, count: int, prefix: str = "s") -> None:
    for i in range(count):
        api.create(service(f"{prefix}{i:04d}", family="IPv6"))


def allocated(api: ApiServer) -> dict[str, list[str]]:
    return {name: got for name, got in all_ips(api).items() if got}


def bootstrapped(ctl: Any) -> dict[str, Any] | None:
    """What the controller's start-up log line reports (which config, how many IPs kept)."""
    for e in ctl.logs():
        if e.get("op") == "startup" and "registered" in e:
            return {k: e[k] for k in ("config", "registered", "held", "refused")}
    return None


def refused_events(api: ApiServer) -> list[dict[str, Any]]:
    return [e for e in events(api, NS, "ConfigRefused") if e["involvedObject"]["name"] == "config"]


def test_restart_with_a_refused_config_changes_no_ip(api, start_controller):
    """Acceptance: 1,000 Services on pool `old`; a config without it is refused; SIGKILL and
    restart with that config still in the ConfigMap: 0 IPs change, ConfigRefused again,
    stale = 1; a refusal naming 1,000 blockers logs fewer than 100 lines a minute."""
    set_config(api, OLD_AND_NEW)
    create_services(api, 1000)
    ctl = start_controller()
    wait_for(lambda: len(allocated(api)) == 1000, 120, interval=0.5, what="1,000 allocations")
    before = allocated(api)
    assert all(got[0].startswith("2001:db8:a::") for got in before.values())
    wait_for(lambda: stored_text(api) == OLD_AND_NEW, 10, what="the accepted config stored")
    assert checksum_of_store(api) == sha256(OLD_AND_NEW)

    set_config(api, ONLY_NEW)
    refused = wait_for(lambda: refused_events(api), 20, what="ConfigRefused")
    assert "1000 Service(s)" in refused[0]["message"]
    assert "apps/s0000 [2001:db8:a::]" in refused[0]["message"]
    assert "apps/s0999" in refused[0]["message"], "the event names every blocker"
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 10)
    # Log volume over one minute of refusal.
    start = len(ctl.logs())
    time.sleep(60)
    lines = ctl.logs()[start:]
    assert len(lines) < 100, f"{len(lines)} log lines in a minute: {lines[:5]}"
    refusals = [e for e in lines if e.get("op") == "setConfig"]
    assert refusals and all(e.get("blockers") == 1000 for e in refusals)
    assert stored_text(api) == OLD_AND_NEW

    ctl.kill()
    first_event_count = refused_events(api)[0].get("count", 1)
    ctl = start_controller()
    wait_for(
        lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 30, what="stale after"
    )
    wait_for(lambda: bootstrapped(ctl), 20, what="the restarted controller's bootstrap")
    assert bootstrapped(ctl) == {"config": "stored", "registered": 1000, "held": 0, "refused": 0}
    # Give the restarted controller time to do what it would do.
    time.sleep(3)
    assert allocated(api) == before
    assert not events(api, "apps", "AllocationFailed")
    assert ctl.metric("metallb_k8s_client_config_loaded_bool") == 1
    wait_for(
        lambda: sum(e.get("count", 1) for e in refused_events(api)) > first_event_count,
        20,
        what="ConfigRefused emitted again after the restart",
    )
    # The last accepted config is in force: a new Service gets an address from `old`.
    api.create(service("late", family="IPv6"))
    wait_for(lambda: ips(api, "late"), 20, what="the new Service allocated")
    assert ips(api, "late")[0].startswith("2001:db8:a::")
    assert ctl.metric("metallb_allocator_addresses_total", pool="old") == 1024

    # Deleting every Service on `old` lets the refused config in, soon after the last one goes;
    # the mass deletion neither floods the log nor the events.
    events_before = len(refused_events(api))
    lines_before = len(ctl.logs())
    for name in before:
        api.delete("services", name, "apps")
    api.delete("services", "late", "apps")
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 0, 30)
    refusals = [e for e in ctl.logs()[lines_before:] if e.get("op") == "setConfig"]
    assert len(refusals) < 100
    assert len(refused_events(api)) - events_before <= 2
    wait_for(lambda: stored_text(api) == ONLY_NEW, 10, what="the new config stored")


def test_first_install_keeps_what_services_hold(api, start_controller):
    """Acceptance: a migration from another load balancer. Services already hold IPs, the first
    ConfigMap covers only some of them: no Service loses its IP, new Services are allocated
    where the config allows, the config is refused while IPs outside it are held."""
    holders = {"a": "192.0.2.10", "b": "192.0.2.11", "c": "198.51.100.3"}
    for name, ip in holders.items():
        svc = api.create(service(name))
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
        api.update_status(svc)
    set_config(api, V4)
    ctl = start_controller()
    api.create(service("fresh"))
    wait_for(lambda: ips(api, "fresh"), 20, what="a new Service allocated from the config")
    assert ips(api, "fresh") == ["198.51.100.0"]
    refused = wait_for(
        lambda: refused_events(api), 20, what="ConfigRefused naming the held Services"
    )
    assert "apps/a [192.0.2.10]" in refused[0]["message"]
    assert "apps/b [192.0.2.11]" in refused[0]["message"]
    assert "apps/c" not in refused[0]["message"]
    kept = wait_for(lambda: events(api, "apps", "KeptOutsideConfig"), 10)
    assert {e["involvedObject"]["name"] for e in kept} == {"a", "b"}
    assert ctl.metric("metallb_k8s_client_config_stale_bool") == 1
    assert {n: ips(api, n) for n in holders} == {n: [ip] for n, ip in holders.items()}
    assert stored(api) is None, "a refused config is not stored"

    # Restarted in this state: still nothing cleared.
    ctl.kill()
    ctl = start_controller()
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 30)
    time.sleep(2)
    assert {n: ips(api, n) for n in holders} == {n: [ip] for n, ip in holders.items()}
    assert not events(api, "apps", "AllocationFailed")

    # A config covering everything is accepted, stored, and moves nobody.
    wide = V4.replace("[198.51.100.0/28]", "[198.51.100.0/28, 192.0.2.0/28]")
    set_config(api, wide)
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 0, 20)
    wait_for(lambda: stored_text(api) == wide, 10)
    assert {n: ips(api, n) for n in holders} == {n: [ip] for n, ip in holders.items()}


def test_two_configs_in_quick_succession_the_last_is_stored(api, start_controller):
    set_config(api, ONLY_OLD)
    ctl = start_controller()
    wait_for(lambda: stored_text(api) == ONLY_OLD, 20)
    set_config(api, OLD_AND_NEW)
    set_config(api, OLD_AND_NEW + "# second\n")
    wait_for(lambda: stored_text(api) == OLD_AND_NEW + "# second\n", 20)
    assert ctl.metric("metallb_k8s_client_config_stale_bool") == 0
    ctl.kill()
    ctl = start_controller()
    wait_for(lambda: ctl.metric("metallb_allocator_addresses_total", pool="new") == 1024, 30)


def test_a_failed_store_write_is_retried_and_a_hand_edit_repaired(api, start_controller):
    set_config(api, ONLY_OLD)
    api.fail_next(4, 500, methods=("POST", "PUT"), resource="configmaps")
    ctl = start_controller()
    create_services(api, 3)
    wait_for(lambda: len(allocated(api)) == 3, 20, what="allocation goes on meanwhile")
    wait_for(lambda: stored_text(api) == ONLY_OLD, 30, what="the store written after retries")
    assert any(e.get("op") == "storeConfig" and "error" in e for e in ctl.logs())

    # Edited by hand: the controller writes it back.
    cm = stored(api)
    assert cm is not None
    cm["data"]["config"] = ONLY_NEW
    api.update(cm)
    wait_for(lambda: stored_text(api) == ONLY_OLD, 20, what="the hand edit repaired")
    assert checksum_of_store(api) == sha256(ONLY_OLD)
    # Deleted: written again.
    api.delete("configmaps", STORE, NS)
    wait_for(lambda: stored_text(api) == ONLY_OLD, 20, what="the deleted store recreated")


def test_a_garbled_store_counts_as_nothing_stored(api, start_controller):
    """A store whose checksum does not match (edited by hand while the controller was down)
    is ignored: the live config is judged alone, and IPs it does not cover are still kept."""
    set_config(api, OLD_AND_NEW)
    create_services(api, 2)
    ctl = start_controller()
    wait_for(lambda: len(allocated(api)) == 2, 20)
    before = allocated(api)
    wait_for(lambda: stored_text(api) == OLD_AND_NEW, 20)
    ctl.kill()
    cm = stored(api)
    assert cm is not None
    cm["data"]["config"] = ONLY_NEW  # checksum no longer matches
    api.update(cm)
    set_config(api, ONLY_NEW)
    ctl = start_controller()
    wait_for(lambda: bootstrapped(ctl), 20, what="the restarted controller's bootstrap")
    assert bootstrapped(ctl) == {"config": "live", "registered": 0, "held": 2, "refused": 0}
    wait_for(lambda: ctl.metric("metallb_k8s_client_config_stale_bool") == 1, 30)
    assert any("edited by hand" in str(e.get("error", "")) for e in ctl.logs())
    time.sleep(2)
    assert allocated(api) == before
    # A new Service is allocated from the live config, the only usable one.
    api.create(service("late", family="IPv6"))
    wait_for(lambda: ips(api, "late"), 20)
    assert ips(api, "late")[0].startswith("2001:db8:b::")
