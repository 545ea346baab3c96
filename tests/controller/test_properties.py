"""Random add/update/delete of Services and config changes against the controller.

Invariants checked after every step:
* no two incompatible Services on one IP (sharing key, backend key, ports);
* every allocation is owned by a pool of the config in force;
* what the API would hold in status is exactly what the allocator holds;
* the allocator's derived indexes agree with its allocations;
* an accepted config change keeps every allocation; a refused one changes nothing at all
  (canonical snapshot compared byte for byte) and names only Services that really block.
A simulated restart (`bootstrap` on the statuses) keeps every Service's addresses.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from metallb_py.allocator import Allocator
from metallb_py.config.model import Config
from metallb_py.controller.reconcile import Controller, Outcome, replay_order
from tests.controller.helpers import apply, pool, status_ips, svc

BLOCKS = (
    "192.0.2.0/30",
    "192.0.2.4/31",
    "192.0.2.252/30",
    "198.51.100.0/31",
    "203.0.113.255/32",
    "2001:db8::/126",
    "2001:db8:1::/127",
)
POOL_NAMES = ("p0", "p1", "p2")
NAMES = tuple(f"s{i}" for i in range(8))
REQUESTABLE = ("192.0.2.1", "192.0.2.5", "198.51.100.0", "2001:db8::2", "203.0.113.255", "bogus")


@st.composite
def configs(draw: st.DrawFn) -> Config:
    pools = []
    for name in POOL_NAMES:
        blocks = draw(st.lists(st.sampled_from(BLOCKS), max_size=4, unique=True))
        pools.append((name, blocks))
    used: set[str] = set()
    built = []
    for name, blocks in pools:
        mine = [b for b in blocks if b not in used]
        used.update(mine)
        if not mine:
            continue
        built.append(
            pool(
                name,
                *mine,
                avoid_buggy_ips=draw(st.booleans()),
                auto_assign=draw(st.sampled_from([True, True, True, False])),
            )
        )
    return Config(pools=tuple(built))


@st.composite
def services(draw: st.DrawFn, name: str) -> dict[str, Any]:
    family = draw(st.sampled_from(["v4", "v4", "v4", "v6", "dual"]))
    cluster_ips = {"v4": ("10.96.0.1",), "v6": ("fd00::1",), "dual": ("10.96.0.1", "fd00::1")}
    ports = draw(
        st.lists(
            st.sampled_from([("TCP", 80), ("TCP", 81), ("UDP", 80), ("TCP", 443), ("UDP", 53)]),
            min_size=1,
            max_size=2,
            unique=True,
        )
    )
    request = draw(st.sampled_from([None] * len(REQUESTABLE) * 2 + list(REQUESTABLE)))
    return svc(
        name,
        type=draw(st.sampled_from(["LoadBalancer"] * 5 + ["ClusterIP"])),
        cluster_ips=cluster_ips[family],
        ports=tuple(ports),
        share=draw(st.sampled_from([None, "a", "a", "a", "b"])),
        policy=draw(st.sampled_from(["Cluster", "Cluster", "Cluster", "Local"])),
        selector={"app": draw(st.sampled_from(["x", "y"]))},
        pool_name=draw(st.sampled_from([None] * 8 + [*POOL_NAMES, "nope"])),
        lb_ip=request,
    )


def snapshot(a: Allocator) -> str:
    return json.dumps(a.snapshot(), sort_keys=True)


class ControllerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ctrl = Controller()
        self.cluster: dict[str, dict[str, Any]] = {}
        """What the API server holds, by key."""

    @initialize(cfg=configs())
    def start(self, cfg: Config) -> None:
        self.ctrl.bootstrap(cfg, [])

    def reconcile(self, key: str) -> None:
        d = self.ctrl.reconcile(key, self.cluster[key])
        self.cluster[key] = apply(self.cluster[key], d)
        if d.outcome is Outcome.REPROCESS_ALL:
            self.reprocess_all()

    def reprocess_all(self) -> None:
        for obj in replay_order(list(self.cluster.values())):
            key = f"default/{obj['metadata']['name']}"
            d = self.ctrl.reconcile(key, self.cluster[key])
            self.cluster[key] = apply(self.cluster[key], d)

    @rule(data=st.data(), name=st.sampled_from(NAMES))
    def upsert(self, data: st.DataObject, name: str) -> None:
        new = data.draw(services(name))
        key = f"default/{name}"
        old = self.cluster.get(key)
        if old is not None:  # an update keeps the status the controller wrote
            new["status"] = copy.deepcopy(old["status"])
        self.cluster[key] = new
        self.reconcile(key)

    @rule(
        names=st.lists(st.sampled_from(NAMES), min_size=2, max_size=2, unique=True),
        family=st.sampled_from([("10.96.0.1",), ("fd00::1",), ("10.96.0.1", "fd00::1")]),
        local=st.booleans(),
    )
    def sharing_pair(self, names: list[str], family: tuple[str, ...], local: bool) -> None:
        """Two Services that may share (same key, disjoint ports), so packing gets exercised."""
        for name, port in zip(names, (("TCP", 80), ("UDP", 53)), strict=True):
            new = svc(
                name,
                cluster_ips=family,
                ports=(port,),
                share="a",
                policy="Local" if local else "Cluster",
                selector={"app": "x"},
            )
            key = f"default/{name}"
            if key in self.cluster:
                new["status"] = copy.deepcopy(self.cluster[key]["status"])
            self.cluster[key] = new
            self.reconcile(key)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        key = f"default/{name}"
        if self.cluster.pop(key, None) is None:
            return
        d = self.ctrl.reconcile(key, None)
        assert d.outcome is Outcome.REPROCESS_ALL
        self.reprocess_all()

    @rule(cfg=configs())
    def change_config(self, cfg: Config) -> None:
        before = snapshot(self.ctrl.allocator)
        held = {s: a.ips for s, a in self.ctrl.allocator.allocations().items()}
        old_config = self.ctrl.config
        d = self.ctrl.set_config(cfg)
        event(f"config change accepted={d.accepted}")
        if not d.accepted:
            assert d.outcome is Outcome.ERROR
            assert snapshot(self.ctrl.allocator) == before
            assert self.ctrl.config is old_config
            assert d.blockers
            probe = Allocator(cfg.pools)
            for b in d.blockers:
                assert held[b.service] == b.ips
                assert probe.pool_for(b.ips) is None
            blocking = {b.service for b in d.blockers}
            for service, ips in held.items():
                if service not in blocking:
                    assert probe.pool_for(ips) is not None
            return
        assert d.outcome is Outcome.REPROCESS_ALL
        assert {s: a.ips for s, a in self.ctrl.allocator.allocations().items()} == held
        self.reprocess_all()

    @rule(late_config=st.booleans())
    def restart(self, late_config: bool) -> None:
        """A new controller process rebuilds everything from the statuses; with
        `late_config` the ConfigMap only shows up after the caches synced."""
        held = {k: status_ips(o) for k, o in self.cluster.items() if status_ips(o)}
        cfg = self.ctrl.config
        self.ctrl = Controller()
        if late_config:
            report = self.ctrl.bootstrap(None, list(self.cluster.values()))
            self.reprocess_all()  # "no config yet" for everyone
            assert self.ctrl.set_config(cfg).accepted
        else:
            report = self.ctrl.bootstrap(cfg, list(self.cluster.values()))
        assert report.refused == ()
        self.reprocess_all()
        for k, ips in held.items():
            assert status_ips(self.cluster[k]) == ips

    @invariant()
    def consistent(self) -> None:
        a = self.ctrl.allocator
        a.verify()
        allocations = a.allocations()
        by_ip: dict[Any, list[Any]] = {}
        for alloc in allocations.values():
            assert a.pool_for(alloc.ips) == alloc.pool
            for ip in alloc.ips:
                by_ip.setdefault(ip, []).append(alloc)
        for users in by_ip.values():
            if len(users) > 1:
                keys = {(u.sharing_key, u.backend_key) for u in users}
                assert len(keys) == 1 and next(iter(keys))[0] != ""
                ports = [p for u in users for p in u.ports]
                assert len(ports) == len(set(ports))
        for key, obj in self.cluster.items():
            held = allocations.get(key)
            expected = [str(ip) for ip in held.ips] if held else []
            assert status_ips(obj) == expected, key
            for text in expected:
                ipaddress.ip_address(text)
        assert set(allocations) <= set(self.cluster)


ControllerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestControllerProperties = ControllerMachine.TestCase
