"""The controller's decisions (config changes, then one Service at a time): exact statuses,
events and outcomes."""

from __future__ import annotations

from metallb_py.controller.reconcile import Controller, Event, Outcome
from tests.controller.helpers import apply, config, key, pool, ready, run, status_ips, svc

CFG = config(
    pool("default", "192.0.2.0/24", "2001:db8::/120"),
    pool("other", "198.51.100.0/24"),
    pool("manual", "203.0.113.0/24", auto_assign=False),
)


def events(d) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in d.events]


# ---- steps 1-4 of Controller.reconcile ---------------------------------------------------


def test_deleted_service_releases_and_reprocesses_all() -> None:
    c = ready(CFG)
    _, _s = run(c, svc("a"))
    assert c.allocator.allocation("default/a") is not None
    d = c.reconcile("default/a", None)
    assert d.outcome is Outcome.REPROCESS_ALL and not d.write
    assert d.log[0]["event"] == "serviceDeleted"
    assert c.allocator.allocation("default/a") is None
    # Its address is free again.
    assert status_ips(run(c, svc("b"))[1]) == ["192.0.2.0"]


def test_no_config_yet_does_nothing() -> None:
    c = Controller()
    d = c.reconcile("default/a", svc("a"))
    assert d.outcome is Outcome.SUCCESS and not d.write and d.events == ()


def test_not_a_load_balancer_clears_status_and_releases() -> None:
    c = ready(CFG)
    _, s = run(c, svc("a"))
    s["spec"]["type"] = "ClusterIP"
    d, s = run(c, s)
    assert d.load_balancer == {} and d.outcome is Outcome.SUCCESS
    assert c.allocator.allocation("default/a") is None
    d, _ = run(c, s)  # already clear: nothing to write
    assert not d.write


def test_no_cluster_ips_clears() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", cluster_ips=(), status_ips=("192.0.2.7",)))
    assert d.load_balancer == {}
    assert c.allocator.allocation("default/a") is None


# ---- step 5: status IPs ------------------------------------------------------------------


def test_status_ip_is_kept_and_nothing_written() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", status_ips=("192.0.2.77",)))
    assert d.outcome is Outcome.SUCCESS and not d.write and d.events == ()
    assert c.allocator.pool_of("default/a") == "default"


def test_fresh_service_gets_first_address_and_one_event() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a"))
    assert d.load_balancer == {"ingress": [{"ip": "192.0.2.0"}]}
    assert events(d) == [("Normal", "IPAllocated", 'Assigned IP ["192.0.2.0"]')]
    d, _ = run(c, s)
    assert not d.write and d.events == ()


def test_hostname_only_entries_are_ignored_and_dropped() -> None:
    c = ready(CFG)
    obj = svc("a")
    obj["status"]["loadBalancer"]["ingress"] = [{"hostname": "lb.example"}]
    d, _ = run(c, obj)
    assert d.load_balancer == {"ingress": [{"ip": "192.0.2.0"}]}


def test_extra_ingress_fields_do_not_cause_writes() -> None:
    c = ready(CFG)
    obj = svc("a")
    obj["status"]["loadBalancer"]["ingress"] = [{"ip": "192.0.2.9", "ipMode": "VIP"}]
    d, _ = run(c, obj)
    assert not d.write


def test_invalid_status_family_is_warned_then_reallocated() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a", status_ips=("192.0.2.8", "192.0.2.9")))
    assert events(d) == [
        (
            "Warning",
            "nolbIPsIPFamily",
            'Failed to retrieve LBIPs IPFamily for ["192.0.2.8" "192.0.2.9"]: '
            'IPFamilyForAddresses: same address family ["192.0.2.8" "192.0.2.9"]',
        ),
        ("Normal", "IPAllocated", 'Assigned IP ["192.0.2.0"]'),
    ]
    assert status_ips(s) == ["192.0.2.0"]


def test_invalid_cluster_ips_family_stops_without_writing() -> None:
    c = ready(CFG)
    obj = svc("a", cluster_ips=("10.96.0.1", "10.96.0.2"), status_ips=("192.0.2.8",))
    d, _ = run(c, obj)
    assert d.outcome is Outcome.SUCCESS and not d.write
    assert events(d) == [
        (
            "Warning",
            "noclusterIPsIPFamily",
            'Failed to retrieve ClusterIPs IPFamily for ["10.96.0.1" "10.96.0.2"]: '
            'IPFamilyForAddresses: same address family ["10.96.0.1" "10.96.0.2"]',
        )
    ]
    # The same warning is not repeated while nothing changes.
    d, _ = run(c, obj)
    assert d.events == ()


def test_invalid_cluster_ips_without_status_fail_allocation() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", cluster_ips=("10.96.0.1", "10.96.0.2")))
    assert [e.reason for e in d.events] == ["AllocationFailed"]
    assert "IPFamilyForAddresses: same address family" in d.events[0].message


def test_status_family_differs_from_cluster_family_reallocates() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a", status_ips=("2001:db8::5",)))
    assert status_ips(s) == ["192.0.2.0"]
    assert [e.reason for e in d.events] == ["IPAllocated"]


# ---- step 6: validate current IPs --------------------------------------------------------


def test_current_ip_outside_every_pool_is_replaced() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a", status_ips=("10.1.2.3",)))
    assert status_ips(s) == ["192.0.2.0"]
    assert d.log[0]["reason"] == "notAllowed"


def test_current_ip_taken_by_an_incompatible_service_is_replaced() -> None:
    c = ready(CFG)
    run(c, svc("a", status_ips=("192.0.2.0",)))
    _d, s = run(c, svc("b", status_ips=("192.0.2.0",)))
    assert status_ips(s) == ["192.0.2.1"]
    assert c.allocator.users_of(c.allocator.allocation("default/a").ips[0]) == ("default/a",)  # type: ignore[union-attr]


def test_pool_annotation_change_moves_the_service() -> None:
    c = ready(CFG)
    _, s = run(c, svc("a"))
    s["metadata"]["annotations"] = {"metallb.universe.tf/address-pool": "other"}
    d, s = run(c, s)
    assert status_ips(s) == ["198.51.100.0"]
    assert d.log[0]["reason"] == "differentPoolRequested"
    assert events(d) == [("Normal", "IPAllocated", 'Assigned IP ["198.51.100.0"]')]


def test_pool_annotation_reaches_auto_assign_false_pool() -> None:
    c = ready(CFG)
    _, s = run(c, svc("a", pool_name="manual"))
    assert status_ips(s) == ["203.0.113.0"]
    _, s = run(c, svc("b"))
    assert status_ips(s) == ["192.0.2.0"]


def test_unknown_pool() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", pool_name="nope"))
    assert events(d) == [
        (
            "Warning",
            "AllocationFailed",
            'Failed to allocate IP for "default/a": unknown pool "nope"',
        )
    ]


def test_malformed_request_with_current_ip_keeps_ip_and_warns_once() -> None:
    c = ready(CFG)
    obj = svc("a", status_ips=("192.0.2.4",), lb_ip="192.0.2.x")
    d, s = run(c, obj)
    assert d.outcome is Outcome.SUCCESS and not d.write
    assert events(d) == [
        (
            "Warning",
            "LoadBalancerFailed",
            'invalid requested loadbalancer IPs: invalid spec.loadBalancerIP "192.0.2.x"',
        )
    ]
    assert c.allocator.pool_of("default/a") == "default"
    d, _ = run(c, s)
    assert d.events == ()


def test_malformed_request_after_clearing_writes_the_cleared_status() -> None:
    c = ready(CFG)
    obj = svc("a", status_ips=("10.1.2.3",), lb_ips="192.0.2.1,bogus")
    d, _ = run(c, obj)
    assert d.load_balancer == {}
    assert [e.reason for e in d.events] == ["LoadBalancerFailed"]
    assert "invalid metallb.universe.tf/loadBalancerIPs" in d.events[0].message


def test_different_requested_ip_is_honoured() -> None:
    c = ready(CFG)
    _, s = run(c, svc("a"))
    s["spec"]["loadBalancerIP"] = "192.0.2.200"
    d, s = run(c, s)
    assert status_ips(s) == ["192.0.2.200"]
    assert d.log[0]["reason"] == "differentIPRequested"
    assert [e.reason for e in d.events] == ["IPAllocated"]


def test_requested_dual_stack_order_is_not_rewritten() -> None:
    c = ready(CFG)
    obj = svc(
        "a",
        cluster_ips=("10.96.0.1", "fd00::1"),
        status_ips=("2001:db8::9", "192.0.2.9"),
        lb_ips="192.0.2.9, 2001:db8::9",
    )
    d, _ = run(c, obj)
    assert not d.write and d.events == ()


# ---- step 7: allocation ------------------------------------------------------------------


def test_dual_stack_allocation_and_message() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a", cluster_ips=("10.96.0.1", "fd00::1")))
    assert status_ips(s) == ["192.0.2.0", "2001:db8::"]
    assert events(d) == [("Normal", "IPAllocated", 'Assigned IP ["192.0.2.0" "2001:db8::"]')]


def test_ipv6_service() -> None:
    c = ready(CFG)
    _, s = run(c, svc("a", cluster_ips=("fd00::1",)))
    assert status_ips(s) == ["2001:db8::"]


def test_requested_ips_annotation_pair() -> None:
    c = ready(CFG)
    obj = svc("a", cluster_ips=("fd00::1", "10.96.0.1"), lb_ips=" 2001:db8::5 ,192.0.2.5")
    _, s = run(c, obj)
    assert status_ips(s) == ["2001:db8::5", "192.0.2.5"]


def test_requested_ip_family_mismatch() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", cluster_ips=("10.96.0.1", "fd00::1"), lb_ip="192.0.2.5"))
    assert events(d) == [
        (
            "Warning",
            "AllocationFailed",
            'Failed to allocate IP for "default/a": requested loadBalancer IP(s) ["192.0.2.5"] '
            "does not match the ipFamily of the service",
        )
    ]


def test_both_request_forms_is_an_error() -> None:
    c = ready(CFG)
    d, _ = run(c, svc("a", lb_ip="192.0.2.5", lb_ips="192.0.2.5"))
    assert d.events[0].message == (
        'Failed to allocate IP for "default/a": service can not have both '
        "metallb.universe.tf/loadBalancerIPs and svc.Spec.LoadBalancerIP"
    )


def test_requested_ip_ignores_auto_assign_false_but_not_avoid_buggy() -> None:
    cfg = config(pool("p", "192.0.2.0/24", avoid_buggy_ips=True, auto_assign=False))
    c = ready(cfg)
    _, s = run(c, svc("a", lb_ip="192.0.2.10"))
    assert status_ips(s) == ["192.0.2.10"]
    d, _ = run(c, svc("b", lb_ip="192.0.2.255"))
    assert d.events[0].message == (
        'Failed to allocate IP for "default/b": ["192.0.2.255"] is not allowed in config'
    )
    d, _ = run(c, svc("c"))
    assert d.events[0].message == 'Failed to allocate IP for "default/c": no available IPs'


def test_pool_annotation_with_ip_from_another_pool_is_refused_once() -> None:
    c = ready(CFG)
    obj = svc("a", pool_name="other", lb_ip="192.0.2.50")
    d, s = run(c, obj)
    assert events(d) == [
        (
            "Warning",
            "AllocationFailed",
            'Failed to allocate IP for "default/a": requested loadBalancer IP(s) ["192.0.2.50"] '
            'belong to pool "default", not to the pool "other" named by '
            "metallb.universe.tf/address-pool",
        )
    ]
    assert not d.write and c.allocator.allocation("default/a") is None
    for _ in range(3):  # no loop, no storm
        d, s = run(c, s)
        assert d.events == () and not d.write


def test_pool_annotation_conflict_on_a_service_already_holding_the_ip() -> None:
    c = ready(CFG)
    obj = svc("a", pool_name="other", lb_ip="192.0.2.50", status_ips=("192.0.2.50",))
    d, s = run(c, obj)
    assert d.load_balancer == {}
    assert [e.reason for e in d.events] == ["AllocationFailed"]
    d, s = run(c, s)
    assert d.events == () and not d.write


def test_pool_annotation_matching_the_requested_ip_is_fine() -> None:
    c = ready(CFG)
    d, s = run(c, svc("a", pool_name="default", lb_ip="192.0.2.50"))
    assert status_ips(s) == ["192.0.2.50"]
    d, _ = run(c, s)
    assert d.events == () and not d.write


def test_exhausted_pool_warns_and_retry_succeeds_after_a_delete() -> None:
    c = ready(config(pool("tiny", "192.0.2.0/31")))
    _, a = run(c, svc("a"))
    _, _b = run(c, svc("b"))
    d, x = run(c, svc("x"))
    assert d.outcome is Outcome.SUCCESS and not d.write
    assert events(d) == [
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/x": no available IPs')
    ]
    assert c.reconcile(key(a), None).outcome is Outcome.REPROCESS_ALL
    d, x = run(c, x)
    assert status_ips(x) == ["192.0.2.0"]
    assert [e.reason for e in d.events] == ["IPAllocated"]


def test_warning_repeats_after_the_situation_changed() -> None:
    c = ready(config(pool("tiny", "192.0.2.0/32")))
    _, a = run(c, svc("a"))
    d, x = run(c, svc("x"))
    assert [e.reason for e in d.events] == ["AllocationFailed"]
    c.reconcile(key(a), None)
    d, x = run(c, x)
    assert [e.reason for e in d.events] == ["IPAllocated"]
    x["spec"]["type"] = "NodePort"
    _, x = run(c, x)
    run(c, a)
    x["spec"]["type"] = "LoadBalancer"
    d, _ = run(c, x)
    assert [e.reason for e in d.events] == ["AllocationFailed"]


def test_sharing_through_the_controller() -> None:
    c = ready(CFG)
    _, a = run(c, svc("a", share="k", ports=(("TCP", 80),)))
    _, b = run(c, svc("b", share="k", ports=(("UDP", 53),)))
    _, x = run(c, svc("x", share="k", ports=(("TCP", 80),)))
    _, l1 = run(c, svc("l1", share="k", ports=(("TCP", 81),), policy="Local"))
    assert status_ips(a) == status_ips(b) == ["192.0.2.0"]
    assert status_ips(x) == ["192.0.2.1"]  # port clash with a: next address
    assert status_ips(l1) == ["192.0.2.2"]  # Local never shares with Cluster
    _, l2 = run(
        c, svc("l2", share="k", ports=(("TCP", 82),), policy="Local", selector={"app": "l1"})
    )
    assert status_ips(l2) == ["192.0.2.2"]  # identical selector: shares


# ---- unsynced gate and start-up (the restart race) ---------------------------------------


def test_unsynced_registers_status_but_refuses_to_allocate() -> None:
    c = Controller()
    c.set_config(CFG)
    d, _ = run(c, svc("old", status_ips=("192.0.2.0",)))
    assert d.outcome is Outcome.SUCCESS
    d, _ = run(c, svc("new"))
    assert d.outcome is Outcome.ERROR and not d.write and d.events == ()


def test_bootstrap_registers_every_status_ip_before_allocating() -> None:
    old = svc("old", status_ips=("192.0.2.0",), created="2024-01-02T00:00:00Z")
    new = svc("new", created="2024-01-01T00:00:00Z")  # sorts first, but has no status
    c = Controller()
    report = c.bootstrap(CFG, [new, old])
    assert report.registered == ("default/old",)
    _, n = run(c, new)
    assert status_ips(n) == ["192.0.2.1"]
    d, _ = run(c, old)
    assert not d.write and d.events == ()


def test_bootstrap_contested_ip_goes_to_the_oldest_claimant() -> None:
    young = svc("young", status_ips=("192.0.2.5",), created="2024-03-01T00:00:00Z")
    elder = svc("elder", status_ips=("192.0.2.5",), created="2023-03-01T00:00:00Z")
    c = Controller()
    report = c.bootstrap(CFG, [young, elder])
    assert report.registered == ("default/elder",)
    assert [(r.service, r.ips) for r in report.refused] == [("default/young", ("192.0.2.5",))]
    assert "already in use by default/elder" in report.refused[0].reason
    d, y = run(c, young)
    assert status_ips(y) == ["192.0.2.0"]
    assert [e.reason for e in d.events] == ["IPAllocated"]
    d, _ = run(c, elder)
    assert not d.write


def test_late_config_registers_every_service_seen_before_it() -> None:
    """No ConfigMap at start-up: the Services from bootstrap and those reconciled while there
    was no config are registered when the first config is accepted, before any allocation."""
    old = svc("old", status_ips=("192.0.2.0",))
    later = svc("later", status_ips=("192.0.2.1",))
    gone = svc("gone", status_ips=("192.0.2.2",))
    c = Controller()
    c.bootstrap(None, [old, gone])
    assert c.reconcile("default/later", later).outcome is Outcome.SUCCESS  # no config yet
    assert c.reconcile("default/gone", None).outcome is Outcome.REPROCESS_ALL
    assert c.set_config(CFG).accepted
    assert sorted(c.allocator.allocations()) == ["default/later", "default/old"]
    _, n = run(c, svc("new"))
    assert status_ips(n) == ["192.0.2.2"]


def test_late_config_with_existing_services_registers_them() -> None:
    old = svc("old", status_ips=("192.0.2.0",))
    c = Controller()
    c.bootstrap(None, [])
    c.set_config(CFG, existing_services=[old])
    _, n = run(c, svc("new"))
    assert status_ips(n) == ["192.0.2.1"]


# ---- config handling ---------------------------------------------------------------------


def test_config_refusal_names_every_blocker_and_keeps_old_config() -> None:
    c = ready(CFG)
    for name, ip in (("b", "198.51.100.7"), ("a", "198.51.100.3"), ("k", "192.0.2.1")):
        run(c, svc(name, status_ips=(ip,)))
    new = config(pool("default", "192.0.2.0/24", "2001:db8::/120"))
    d = c.set_config(new)
    assert d.outcome is Outcome.ERROR and not d.accepted
    assert [(b.service, [str(i) for i in b.ips], b.reason) for b in d.blockers] == [
        ("default/a", ["198.51.100.3"], "198.51.100.3 is not in any pool"),
        ("default/b", ["198.51.100.7"], "198.51.100.7 is not in any pool"),
    ]
    assert c.config is CFG
    assert c.check_config(new).blockers == d.blockers


def test_config_accepted_reprocesses_all() -> None:
    c = ready(CFG)
    run(c, svc("a"))
    d = c.set_config(config(pool("renamed", "192.0.2.0/23")))
    assert d.outcome is Outcome.REPROCESS_ALL and d.accepted
    assert c.allocator.pool_of("default/a") == "renamed"


def test_missing_config_keeps_the_old_one() -> None:
    c = ready(CFG)
    d = c.set_config(None)
    assert d.outcome is Outcome.ERROR_NO_RETRY and c.config is CFG


# ---- garbage in, events out --------------------------------------------------------------


def test_garbage_never_raises() -> None:
    c = ready(CFG)
    assert c.reconcile("x/y", "not a dict").outcome is Outcome.ERROR_NO_RETRY  # type: ignore[arg-type]
    d = c.reconcile("x/y", {})
    assert d.outcome is Outcome.SUCCESS and not d.write  # no spec: not a LoadBalancer
    bad_ports = svc("a")
    bad_ports["spec"]["ports"] = [{"port": "http"}, "nonsense"]
    d = c.reconcile("default/a", bad_ports)
    assert d.outcome is Outcome.ERROR_NO_RETRY and not d.write
    assert events(d)[0][:2] == ("Warning", "InvalidService")
    assert "spec.ports[0].port" in d.events[0].message
    weird = svc("b", annotations={"metallb.universe.tf/allow-shared-ip": True})  # type: ignore[dict-item]
    assert c.reconcile("default/b", weird).events[0].reason == "InvalidService"
    meta = svc("c")
    meta["metadata"] = ["not", "a", "mapping"]
    assert c.reconcile("default/c", meta).events[0].reason == "InvalidService"
    status = svc("d")
    status["status"] = {"loadBalancer": {"ingress": "192.0.2.1"}}
    assert c.reconcile("default/d", status).events[0].reason == "InvalidService"
    bad_status_ip = svc("e", status_ips=("not-an-ip",))
    d = c.reconcile("default/e", bad_status_ip)
    assert [e.reason for e in d.events] == ["nolbIPsIPFamily", "IPAllocated"]
    bad_cluster = svc("f", cluster_ips=("banana",))
    d = c.reconcile("default/f", bad_cluster)
    assert d.events[0].reason == "AllocationFailed"
    c.allocator.verify()


def test_event_shape() -> None:
    assert Event("Normal", "IPAllocated", "m").to_dict() == {
        "type": "Normal",
        "reason": "IPAllocated",
        "message": "m",
    }


def test_apply_helper_only_changes_status() -> None:
    obj = svc("a")
    c = ready(CFG)
    d = c.reconcile("default/a", obj)
    out = apply(obj, d)
    assert out["spec"] == obj["spec"] and out["metadata"] == obj["metadata"]
