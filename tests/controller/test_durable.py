"""Nothing lost across restarts, the pure part (issue 11): which config a starting controller
puts in force, and how IPs that no config covers are held instead of cleared."""

from __future__ import annotations

from metallb_py.allocator import Allocator, AllocatorError, Port, Usage
from metallb_py.controller.reconcile import Controller, Outcome
from tests.allocator.helpers import ip
from tests.controller.helpers import config, pool, run, status_ips, svc

OLD = config(pool("old", "192.0.2.0/28"), pool("new", "198.51.100.0/28"))
NEW = config(pool("new", "198.51.100.0/28"))
WIDE = config(pool("new", "198.51.100.0/28"), pool("back", "192.0.2.0/24"))


def holders() -> list[dict]:
    return [
        svc("a", status_ips=("192.0.2.0",), created="2024-01-01T00:00:00Z"),
        svc("b", status_ips=("192.0.2.1",), created="2024-01-02T00:00:00Z"),
        svc("c", status_ips=("198.51.100.5",), created="2024-01-03T00:00:00Z"),
    ]


# ---- which config is in force at start-up ------------------------------------------------


def test_refused_live_config_falls_back_to_the_stored_one() -> None:
    c = Controller()
    report = c.bootstrap(NEW, holders(), stored=OLD)
    assert report.source == "stored" and c.config is OLD
    assert report.registered == ("default/a", "default/b", "default/c")
    assert report.held == () and report.refused == ()
    assert report.live is not None and not report.live.accepted and not report.live.in_force
    assert report.live.outcome is Outcome.ERROR
    assert [b.service for b in report.live.blockers] == ["default/a", "default/b"]
    # Nothing is cleared, and a new Service is allocated from the stored config.
    for obj in holders():
        d, _ = run(c, obj)
        assert not d.write and d.events == ()
    _, fresh = run(c, svc("fresh"))
    assert status_ips(fresh) == ["192.0.2.2"]
    # The live config is still refused while a and b hold their addresses.
    assert not c.set_config(NEW).accepted


def test_accepted_live_config_wins_over_the_stored_one() -> None:
    c = Controller()
    report = c.bootstrap(WIDE, holders(), stored=OLD)
    assert report.source == "live" and c.config is WIDE
    assert report.live is not None and report.live.accepted and report.live.in_force


def test_missing_or_invalid_live_config_uses_the_stored_one() -> None:
    c = Controller()
    report = c.bootstrap(None, holders(), stored=OLD)
    assert report.source == "stored" and report.live is None and c.config is OLD
    assert len(report.registered) == 3


def test_nothing_stored_the_live_config_is_in_force_and_orphans_are_held() -> None:
    """A first install over Services that already hold IPs (a migration)."""
    c = Controller()
    report = c.bootstrap(NEW, holders())
    assert report.source == "live" and c.config is NEW
    assert report.registered == ("default/c",)
    assert [h.service for h in report.held] == ["default/a", "default/b"]
    assert report.live is not None
    assert not report.live.accepted and report.live.in_force
    assert report.live.outcome is Outcome.ERROR
    assert [b.service for b in report.live.blockers] == ["default/a", "default/b"]
    d, _ = run(c, holders()[0])
    assert not d.write
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "KeptOutsideConfig")]
    assert "192.0.2.0" in d.events[0].message
    d, _ = run(c, holders()[0])
    assert d.events == (), "the warning is not repeated"
    _, fresh = run(c, svc("fresh"))
    assert status_ips(fresh) == ["198.51.100.0"]
    # Held IPs count in no pool's statistics.
    assert c.allocator.stats()["new"].addresses_in_use == 2
    assert c.allocator.pool_of("default/a") is None


def test_same_stored_and_live_config_holds_what_it_does_not_cover() -> None:
    c = Controller()
    report = c.bootstrap(NEW, holders(), stored=NEW)
    assert report.source == "live" and [h.service for h in report.held] == [
        "default/a",
        "default/b",
    ]


def test_held_services_unblock_the_config_when_they_go() -> None:
    c = Controller()
    c.bootstrap(NEW, holders())
    assert c.reconcile("default/a", None).outcome is Outcome.REPROCESS_ALL
    d = c.set_config(NEW)
    assert not d.accepted and [b.service for b in d.blockers] == ["default/b"]
    assert d.in_force, "refused, but it is the config in force"
    assert not c.set_config(config(pool("x", "203.0.113.0/28"))).in_force
    c.reconcile("default/b", None)
    d = c.set_config(NEW)
    assert d.accepted and d.in_force and d.outcome is Outcome.REPROCESS_ALL


def test_a_config_covering_held_ips_is_accepted_and_adopts_them() -> None:
    c = Controller()
    c.bootstrap(NEW, holders())
    d = c.set_config(WIDE)
    assert d.accepted
    assert c.allocator.pool_of("default/a") == "back"
    assert c.allocator.stats()["back"].addresses_in_use == 2
    c.allocator.verify()
    again, _ = run(c, holders()[0])
    assert not again.write and again.events == ()


def test_a_held_service_keeps_its_ip_when_its_ports_change() -> None:
    c = Controller()
    c.bootstrap(NEW, holders())
    moved = svc("a", status_ips=("192.0.2.0",), ports=(("TCP", 443),))
    d, s = run(c, moved)
    assert not d.write and status_ips(s) == ["192.0.2.0"]
    assert c.allocator.allocation("default/a").ports == (Port("TCP", 443),)  # type: ignore[union-attr]


def test_user_changes_to_a_held_service_are_honoured() -> None:
    c = Controller()
    c.bootstrap(NEW, holders())
    # A requested IP inside the config: moved there.
    _, s = run(c, svc("a", status_ips=("192.0.2.0",), lb_ip="198.51.100.9"))
    assert status_ips(s) == ["198.51.100.9"]
    # Not a LoadBalancer any more: cleared.
    _, s = run(c, svc("b", status_ips=("192.0.2.1",), type="ClusterIP"))
    assert status_ips(s) == []
    assert c.set_config(NEW).accepted


def test_status_rewritten_by_someone_else_is_not_held() -> None:
    """Only what a Service held at start-up is kept; a status IP written later outside every
    pool is replaced, as upstream does."""
    c = Controller()
    c.bootstrap(NEW, holders())
    _, s = run(c, svc("a", status_ips=("192.0.2.9",)))
    assert status_ips(s) == ["198.51.100.0"]


def test_contested_held_ip_goes_to_the_oldest_claimant() -> None:
    elder = svc("elder", status_ips=("192.0.2.7",), created="2023-01-01T00:00:00Z")
    young = svc("young", status_ips=("192.0.2.7",), created="2024-01-01T00:00:00Z")
    c = Controller()
    report = c.bootstrap(NEW, [young, elder])
    assert [h.service for h in report.held] == ["default/elder"]
    assert [r.service for r in report.refused] == ["default/young"]
    _, y = run(c, young)
    assert status_ips(y) == ["198.51.100.0"]


def test_first_config_after_start_up_holds_what_it_does_not_cover() -> None:
    c = Controller()
    c.bootstrap(None, holders())
    d = c.set_config(NEW)
    assert not d.accepted and d.in_force and c.config is NEW
    assert [b.service for b in d.blockers] == ["default/a", "default/b"]


# ---- Allocator.hold ----------------------------------------------------------------------


def test_hold_reserves_outside_every_pool_with_the_sharing_rules() -> None:
    a = Allocator(NEW.pools)
    a.hold("ns/x", [ip("192.0.2.1")], Usage((Port("TCP", 80),), "k", ""))
    a.hold("ns/y", [ip("192.0.2.1")], Usage((Port("TCP", 81),), "k", ""))
    try:
        a.hold("ns/z", [ip("192.0.2.1")], Usage((Port("TCP", 82),), "", ""))
    except AllocatorError as exc:
        assert "does not allow sharing" in str(exc)
    else:
        raise AssertionError("sharing rules not applied to held IPs")
    assert [h.service for h in a.held_allocations()] == ["ns/x", "ns/y"]
    assert a.stats()["new"].addresses_in_use == 0
    change = a.set_pools(NEW.pools)
    assert not change.accepted and [b.service for b in change.blockers] == ["ns/x", "ns/y"]
    a.verify()
    a.release("ns/x")
    a.release("ns/y")
    assert a.set_pools(NEW.pools).accepted


def test_held_ip_inside_a_pool_is_never_handed_out() -> None:
    """avoid-buggy-ips makes .0 unownable, so a Service holding it is held; the allocator
    must still not give .0 to anyone else once the rule is lifted."""
    buggy = config(pool("p", "192.0.2.0/30", avoid_buggy_ips=True))
    c = Controller()
    report = c.bootstrap(buggy, [svc("zero", status_ips=("192.0.2.0",))])
    assert [h.service for h in report.held] == ["default/zero"]
    _, s = run(c, svc("next"))
    assert status_ips(s) == ["192.0.2.1"]
    d = c.set_config(config(pool("p", "192.0.2.0/30")))
    assert d.accepted and c.allocator.pool_of("default/zero") == "p"
    _, s = run(c, svc("third"))
    assert status_ips(s) == ["192.0.2.2"]
