"""The controller's decisions, pure: values in, values out.

`Controller` holds the allocator and the current config. The controller process feeds it
Services (dicts in the Kubernetes JSON shape) and config changes from its work queue and carries
out the returned `Decision`: write `status.loadBalancer` (or not), emit the events, and treat the
item according to the outcome. Nothing here talks to Kubernetes.

Deviations from v0.12, each in docs/behaviour-differences.md:
* a pool annotation combined with requested IPs from another pool is refused with one Warning
  instead of releasing and re-assigning the IP (and emitting `IPAllocated`) on every pass;
* a Warning identical to the last one emitted for the same Service is not repeated;
* status IPs with an invalid family combination are dropped and re-allocated (upstream leaves
  them in status without telling the allocator);
* at start-up every status IP is registered in one pass (`bootstrap`) before any allocation,
  and allocation waits until that has happened under a loaded config;
* a Service is never cleared because the config does not cover the IPs it holds at start-up:
  they are held (`Allocator.hold`) and block the config, which is then refused, and the last
  accepted config (kept in the cluster by the process) is in force when there is one;
* requested IPs are compared with the current ones as sets, without reordering the status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.allocator.allocation import Allocation, AllocatorError, Blocker, PoolChange
from metallb_py.allocator.allocator import Allocator
from metallb_py.allocator.ips import (
    FamilyError,
    family_of_strings,
    go_quote,
    go_quote_list,
    ip_text,
)
from metallb_py.config.model import Config, IPAddress
from metallb_py.controller.service import (
    RequestError,
    ServiceView,
    parse_timestamp,
    read_service,
    requested_ips,
)
from metallb_py.k8s.outcome import Outcome

COMPONENT = "metallb-controller"
"""The `source.component` of every event the controller emits."""


@dataclass(frozen=True)
class Event:
    type: str
    """`Normal` or `Warning`."""
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class Decision:
    """The result of reconciling one Service."""

    outcome: Outcome
    load_balancer: dict[str, Any] | None = None
    """The new `status.loadBalancer` to write (`{}` clears it); None means write nothing."""
    events: tuple[Event, ...] = ()
    """Events to emit on the Service, in order."""
    log: tuple[dict[str, str], ...] = ()
    """Structured log entries (`event`/`op`, `reason`, `msg`, `error`), as upstream logs."""

    @property
    def write(self) -> bool:
        return self.load_balancer is not None


@dataclass(frozen=True)
class ConfigDecision:
    """The result of handing a config to the controller."""

    outcome: Outcome
    accepted: bool
    blockers: tuple[Blocker, ...] = ()
    """Every Service whose IPs the new config cannot own (sorted by key)."""
    change: PoolChange | None = None
    note: str = ""
    in_force: bool = False
    """The config is the one now used for allocation: always when accepted, and also when
    refused but adopted because nothing better was in force (held IPs block it)."""

    @property
    def message(self) -> str:
        """One line for logs and events; built on demand (it names every blocker)."""
        if self.change is not None:
            return "config accepted" if self.accepted else self.change.message
        return self.note


@dataclass(frozen=True)
class StatusClaim:
    """A status IP set that could not be registered at start-up (the Service will be
    reconciled normally, and re-allocated if its IPs are not usable)."""

    service: str
    ips: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class BootstrapReport:
    live: ConfigDecision | None
    """The judgement of the live config; None when there is none."""
    source: str
    """Which config is in force: "live", "stored" or "" (none yet)."""
    registered: tuple[str, ...]
    """Services whose status IPs were registered, in registration order."""
    held: tuple[StatusClaim, ...]
    """Status IPs kept although the config in force does not cover them."""
    refused: tuple[StatusClaim, ...]
    """Status IPs contested by an older Service: these Services are re-allocated."""


def replay_order(services: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Order in which to register and reconcile Services: oldest `creationTimestamp` first
    (missing timestamps last), then `namespace/name`. The oldest claimant of a contested
    status IP keeps it."""

    def sort_key(obj: Mapping[str, Any]) -> tuple[int, float, str]:
        metadata = obj.get("metadata")
        meta = metadata if isinstance(metadata, Mapping) else {}
        stamp = parse_timestamp(meta.get("creationTimestamp"))
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
        name = meta.get("name") if isinstance(meta.get("name"), str) else ""
        key = f"{namespace or 'default'}/{name}"
        return (0, stamp, key) if stamp is not None else (1, 0.0, key)

    return sorted((s for s in services if isinstance(s, Mapping)), key=sort_key)


@dataclass(frozen=True)
class _Adoption:
    decision: ConfigDecision
    registered: tuple[str, ...]
    held: tuple[StatusClaim, ...]
    refused: tuple[StatusClaim, ...]

    @property
    def claims(self) -> tuple[tuple[str, ...], tuple[StatusClaim, ...], tuple[StatusClaim, ...]]:
        return self.registered, self.held, self.refused


class _Work:
    """Scratch state of one reconcile: the IPs the Service ends up with and what to report."""

    def __init__(self, controller: Controller, key: str) -> None:
        self.controller = controller
        self.key = key
        self.ips: list[IPAddress] = []
        self.cleared = False
        self.events: list[Event] = []
        self.log: list[dict[str, str]] = []

    def clear(self, reason: str, msg: str, **extra: str) -> None:
        self.controller.allocator.release(self.key)
        self.ips = []
        self.cleared = True
        self.log.append({"event": "clearAssignment", "reason": reason, "msg": msg, **extra})

    def warn(self, reason: str, message: str) -> None:
        event = Event("Warning", reason, message)
        if self.controller._last_warning.get(self.key) == event:
            return
        self.controller._last_warning[self.key] = event
        self.events.append(event)

    def normal(self, reason: str, message: str) -> None:
        self.controller._last_warning.pop(self.key, None)
        self.events.append(Event("Normal", reason, message))


class Controller:
    """Allocator + config + the sync gate; one instance per controller process."""

    def __init__(self) -> None:
        self.allocator = Allocator()
        self.config: Config | None = None
        self.synced = False
        """True once `bootstrap` ran (informer caches synced)."""
        self._registered = False
        """True once status IPs were registered under a loaded config."""
        self._pending: dict[str, Mapping[str, Any]] = {}
        """Services seen before any config was loaded: registered when the first one is."""
        self._last_warning: dict[str, Event] = {}

    @property
    def can_allocate(self) -> bool:
        return self.synced and self._registered and self.config is not None

    # ---- config --------------------------------------------------------------------------

    def check_config(self, config: Config) -> ConfigDecision:
        """What `set_config` would answer, without changing anything (for `plan`)."""
        return self._config_decision(self.allocator.check_pools(config.pools))

    def set_config(
        self,
        config: Config | None,
        existing_services: Iterable[Mapping[str, Any]] | None = None,
    ) -> ConfigDecision:
        """Take a new config if the allocator can move every Service's IPs to its pools. A
        refused config changes nothing; `blockers` names every Service in the way. The first
        accepted config registers the status IPs of every Service seen so far (from
        `bootstrap` and from reconciles while there was no config), plus `existing_services`
        if given, before anything can be allocated (docs/behaviour-differences.md, "Restart
        race")."""
        if config is None:
            return ConfigDecision(
                Outcome.ERROR_NO_RETRY,
                accepted=False,
                note="no MetalLB configuration in cluster; keeping the previous one",
            )
        if not self._registered:
            known = dict(self._pending)
            for obj in existing_services or ():
                if isinstance(obj, Mapping):
                    known[read_service(obj).key] = obj
            self._pending.clear()
            return self._adopt(config, known.values()).decision
        change = self.allocator.set_pools(config.pools)
        if change.accepted:
            self.config = config
        decision = self._config_decision(change)
        if not change.accepted and config == self.config:
            # The config in force, still blocked by the IPs it holds outside itself.
            decision = dataclasses.replace(decision, in_force=True)
        return decision

    @staticmethod
    def _config_decision(change: PoolChange) -> ConfigDecision:
        if change.accepted:
            return ConfigDecision(Outcome.REPROCESS_ALL, True, (), change, in_force=True)
        return ConfigDecision(Outcome.ERROR, False, change.blockers, change)

    def _adopt(self, config: Config, services: Iterable[Mapping[str, Any]]) -> _Adoption:
        """Make `config` the first config of this controller and register every status IP
        under it. IPs it does not cover are held, not cleared: the config is then in force (new
        Services are allocated from it) but refused, and it stays refused while they are held."""
        self.allocator = Allocator()
        change = self.allocator.set_pools(config.pools)
        if not change.accepted:
            return _Adoption(self._config_decision(change), (), (), ())
        self.config = config
        registered, held, refused = self.register_existing(services)
        if not held:
            return _Adoption(self._config_decision(change), registered, held, refused)
        blocked = self.allocator.check_pools(config.pools)
        decision = ConfigDecision(Outcome.ERROR, False, blocked.blockers, blocked, in_force=True)
        return _Adoption(decision, registered, held, refused)

    # ---- start-up ------------------------------------------------------------------------

    def bootstrap(
        self,
        live: Config | None,
        services: Iterable[Mapping[str, Any]],
        stored: Config | None = None,
    ) -> BootstrapReport:
        """Start-up after the informer caches synced: choose the config, register every status
        IP in one pass, then allow allocation (docs/behaviour-differences.md, "Restart race"
        and "Durable config").

        The live config is judged against what Services hold, exactly as at run time: if it
        would orphan IPs it is refused and `stored` (the last accepted config) is in force;
        with nothing stored the live config is in force with the orphaned IPs held. Either way
        no Service loses an IP because the controller restarted."""
        services = list(services)
        self.synced = True
        first = live if live is not None else stored
        if first is None:
            for obj in services:
                if isinstance(obj, Mapping):
                    self._pending[read_service(obj).key] = obj
            return BootstrapReport(None, "", (), (), ())
        adoption = self._adopt(first, services)
        if live is None:
            return BootstrapReport(None, "stored", *adoption.claims)
        if adoption.decision.accepted or stored is None or stored == live:
            return BootstrapReport(adoption.decision, "live", *adoption.claims)
        refused_live = dataclasses.replace(adoption.decision, in_force=False)
        fallback = self._adopt(stored, services)
        return BootstrapReport(refused_live, "stored", *fallback.claims)

    def register_existing(
        self, services: Iterable[Mapping[str, Any]]
    ) -> tuple[tuple[str, ...], tuple[StatusClaim, ...], tuple[StatusClaim, ...]]:
        """Register the status IPs of every Service, in `replay_order`: (registered, held,
        refused). The first claimant of a contested IP keeps it; IPs the config does not own
        are held. Needs a loaded config (pools decide ownership)."""
        if self.config is None:
            return (), (), ()
        registered: list[str] = []
        held: list[StatusClaim] = []
        refused: list[StatusClaim] = []
        for obj in replay_order(services):
            view = read_service(obj)
            if not view.name or view.problems or not view.status_ips:
                continue
            if view.type != "LoadBalancer" or not view.cluster_ips:
                continue
            try:
                family, ips = family_of_strings(view.status_ips)
                cluster_family, _ = family_of_strings(view.cluster_ips)
            except FamilyError as exc:
                refused.append(StatusClaim(view.key, view.status_ips, str(exc)))
                continue
            if family != cluster_family:
                refused.append(
                    StatusClaim(
                        view.key,
                        view.status_ips,
                        f"status family {family} differs from clusterIPs family {cluster_family}",
                    )
                )
                continue
            try:
                self.allocator.assign(view.key, ips, view.usage)
            except AllocatorError as exc:
                try:
                    self.allocator.hold(view.key, ips, view.usage)
                except AllocatorError as contested:
                    refused.append(StatusClaim(view.key, view.status_ips, str(contested)))
                else:
                    held.append(StatusClaim(view.key, view.status_ips, str(exc)))
                continue
            registered.append(view.key)
        self._registered = True
        return tuple(registered), tuple(held), tuple(refused)

    # ---- one Service ---------------------------------------------------------------------

    def reconcile(self, key: str, service: Mapping[str, Any] | None) -> Decision:
        """Decide for the Service `key` (`namespace/name`); None means it was deleted.

        The steps, as the comments below number them:
        1. deleted: release its IPs and re-process every Service (an address came free);
        2. no config yet: remember the Service for the first config and do nothing;
        3. not a LoadBalancer: clear its status; fields of the wrong type: one Warning only;
        4. no clusterIPs: clear;
        5. the status IPs: a family that does not parse or differs from the clusterIPs' is
           cleared;
        6. the status IPs assigned again (or held, docs/behaviour-differences.md "Durable
           config"), cleared when not allowed or when the pool annotation or the requested
           IPs ask for something else;
        7. no IPs: allocate (the requested IPs, else the annotated pool, else the first
           auto-assign pool that can serve) and announce `IPAllocated`;
        8. sanity: IPs without a pool are an internal error;
        9. write the status when it does not show exactly these IPs.
        """
        if service is None:
            self._last_warning.pop(key, None)
            self._pending.pop(key, None)
            if self.allocator.release(key):
                log = ({"event": "serviceDeleted", "msg": "service deleted"},)
                return Decision(Outcome.REPROCESS_ALL, log=log)
            return Decision(Outcome.REPROCESS_ALL)
        if self.config is None:
            if isinstance(service, Mapping):
                self._pending[key] = service
            return Decision(
                Outcome.SUCCESS,
                log=({"event": "noConfig", "msg": "not processing, still waiting for config"},),
            )
        if not isinstance(service, Mapping):
            return Decision(
                Outcome.ERROR_NO_RETRY,
                log=({"op": "reconcile", "error": "not an object", "msg": "ignoring item"},),
            )
        view = read_service(service)
        work = _Work(self, key)
        result = self._converge(work, view)
        if isinstance(result, Outcome):
            # Stopped before the status step: nothing is written.
            return Decision(result, None, tuple(work.events), tuple(work.log))
        return Decision(
            Outcome.SUCCESS, self._status_write(view, work), tuple(work.events), tuple(work.log)
        )

    def _converge(self, work: _Work, view: ServiceView) -> Outcome | None:
        """Steps 3–8. Returns an Outcome to stop without writing, None to write the status."""
        key = work.key
        if view.type != "LoadBalancer":
            self._last_warning.pop(key, None)
            work.clear("notLoadBalancer", "not a LoadBalancer")
            return None
        if view.problems:
            work.warn("InvalidService", "invalid Service: " + "; ".join(view.problems))
            work.log.append({"op": "readService", "error": "; ".join(view.problems)})
            return Outcome.ERROR_NO_RETRY
        if not view.cluster_ips:
            work.clear("noClusterIPs", "No ClusterIPs")
            return None

        # Step 5: the IPs in status and their family.
        if not view.status_ips:
            work.clear("noIPs", "no IP in status")
        else:
            try:
                lb_family, lb_ips = family_of_strings(view.status_ips)
            except FamilyError as exc:
                work.warn(
                    "nolbIPsIPFamily",
                    f"Failed to retrieve LBIPs IPFamily for {go_quote_list(view.status_ips)}: "
                    f"IPFamilyForAddresses: {exc}",
                )
                work.clear("nolbIPsIPFamily", "Failed to retrieve lbIPs family")
                lb_family, lb_ips = None, ()
            if lb_family is not None:
                try:
                    cluster_family, _ = family_of_strings(view.cluster_ips)
                except FamilyError as exc:
                    work.warn(
                        "noclusterIPsIPFamily",
                        "Failed to retrieve ClusterIPs IPFamily for "
                        f"{go_quote_list(view.cluster_ips)}: IPFamilyForAddresses: {exc}",
                    )
                    work.log.append({"event": "clearAssignment", "reason": "noclusterIPsIPFamily"})
                    return Outcome.SUCCESS
                if lb_family != cluster_family:
                    work.clear("familyChanged", "status IP family differs from clusterIPs")
                else:
                    work.ips = list(lb_ips)

        # Step 6: are the current IPs still right?
        held = False
        if work.ips:
            try:
                held = self.allocator.assign(key, work.ips, view.usage).held
            except AllocatorError as exc:
                held = self._hold_again(key, work.ips, view)
                if not held:
                    work.clear(
                        "notAllowed", "current IP not allowed by config, clearing", error=str(exc)
                    )
            pool = self.allocator.pool_of(key)
            if work.ips and not held and view.pool_annotation and pool != view.pool_annotation:
                work.clear(
                    "differentPoolRequested",
                    "user requested a different pool than the one currently assigned",
                )
            try:
                wanted, _ = requested_ips(view)
            except RequestError as exc:
                work.warn("LoadBalancerFailed", f"invalid requested loadbalancer IPs: {exc}")
                work.log.append({"event": "loadbalancerIP", "error": str(exc)})
                return None if work.cleared else Outcome.SUCCESS
            if wanted and set(wanted) != set(work.ips):
                work.clear(
                    "differentIPRequested",
                    "user requested a different IP than the one currently assigned",
                )

        # Step 7: allocate.
        if not work.ips:
            if not self.can_allocate:
                work.log.append(
                    {
                        "op": "allocateIPs",
                        "error": "controller not synced",
                        "msg": "controller not synced yet, cannot allocate IP; will retry",
                    }
                )
                return Outcome.ERROR
            try:
                alloc = self._allocate(key, view)
            except (AllocatorError, RequestError) as exc:
                work.warn("AllocationFailed", f"Failed to allocate IP for {go_quote(key)}: {exc}")
                work.log.append({"op": "allocateIPs", "error": str(exc)})
                return None if work.cleared else Outcome.SUCCESS
            work.ips = list(alloc.ips)
            work.normal("IPAllocated", f"Assigned IP {go_quote_list(work.ips)}")
            work.log.append({"event": "ipAllocated", "ip": ",".join(map(ip_text, work.ips))})

        current = self.allocator.allocation(key)
        if current is not None and current.held:
            work.warn(
                "KeptOutsideConfig",
                f"keeping {go_quote_list(work.ips)}: no pool of the config in force owns them; "
                "MetalLB does not take an address away from a Service, so the config that "
                "orphans it stays refused until the Service is moved or deleted",
            )
            return None

        # Step 8: sanity.
        if not work.ips:
            work.warn("InternalError", "didn't allocate an IP but also did not fail")
            work.clear("internalError", "internal error: no IP and no failure")
            return None
        pool = self.allocator.pool_of(key)
        if pool is None or self.config is None or self.config.pool(pool) is None:
            work.warn("InternalError", "allocated an IP that has no pool")
            work.clear("internalError", "internal error: allocated IP has no matching pool")
            return None
        self._last_warning.pop(key, None)
        return None

    def _hold_again(self, key: str, ips: list[IPAddress], view: ServiceView) -> bool:
        """A held Service keeps its IPs while its status still shows exactly them (its ports
        or keys may have changed: the sharing rules are checked again)."""
        existing = self.allocator.allocation(key)
        if existing is None or not existing.held or existing.ips != tuple(ips):
            return False
        try:
            self.allocator.hold(key, ips, view.usage)
        except AllocatorError:
            return False
        return True

    def _allocate(self, key: str, view: ServiceView) -> Allocation:
        """Step 7's choice: requested IPs, else the annotated pool, else any pool."""
        try:
            family, _ = family_of_strings(view.cluster_ips)
        except FamilyError as exc:
            raise RequestError(f"IPFamilyForAddresses: {exc}") from None
        wanted, wanted_family = requested_ips(view)
        if wanted:
            if wanted_family != family:
                raise RequestError(
                    f"requested loadBalancer IP(s) {go_quote_list(wanted)} does not match "
                    "the ipFamily of the service"
                )
            owner = self.allocator.pool_for(wanted)
            if view.pool_annotation and owner is not None and owner != view.pool_annotation:
                raise RequestError(
                    f"requested loadBalancer IP(s) {go_quote_list(wanted)} belong to pool "
                    f"{go_quote(owner)}, not to the pool {go_quote(view.pool_annotation)} "
                    "named by metallb.universe.tf/address-pool"
                )
            return self.allocator.assign(key, wanted, view.usage)
        if view.pool_annotation:
            return self.allocator.allocate_from_pool(key, family, view.pool_annotation, view.usage)
        return self.allocator.allocate(key, family, view.usage)

    @staticmethod
    def _status_write(view: ServiceView, work: _Work) -> dict[str, Any] | None:
        """Step 9: the `status.loadBalancer` to write, or None when nothing changes.

        When the IPs are unchanged the existing entries are left alone, extra fields (such as
        `ipMode`, which newer API servers default) included, so there is no write loop.
        """
        entries = view.ingress_entries
        if work.ips:
            wanted = [ip_text(ip) for ip in work.ips]
            current = [e.get("ip") for e in entries]
            if current == wanted:
                return None
            return {"ingress": [{"ip": ip} for ip in wanted]}
        if work.cleared and entries:
            return {}
        return None
