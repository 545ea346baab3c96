"""`metallb-py plan`, the pure part: replay what the controller would do with a config.

Given Services (what `kubectl get svc -A -o yaml` prints) and a config, the replay is the
controller's own start-up and reprocess-all, run on `Controller` unchanged:

1. bootstrap under the first config (`--current` if given, else the new one): every status IP
   is registered first, oldest Service first; IPs the config does not cover are kept (held),
   and without `--current` they make the new config refused, as a controller started on it
   with nothing stored would do;
2. every Service is reconciled in `replay_order` (creationTimestamp, then namespace/name), and
   each Service whose status was written is reconciled once more, as its update event would
   make the real controller do;
3. with a current config, the new one is handed to the controller: refused means every blocking
   Service is reported and nothing changes; accepted means steps 2 runs again under it.

The JSON shape of `Plan.to_json()` is a stable interface, documented in docs/plan.md.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metallb_py.config.errors import ConfigError
from metallb_py.config.model import Config
from metallb_py.config.yamlnodes import plain_documents
from metallb_py.controller.reconcile import ConfigDecision, Controller, Event, replay_order
from metallb_py.controller.service import read_service

MAX_SERVICES_BYTES = 32 * 1024 * 1024
"""`kubectl get svc -A -o yaml` of 10,000 Services is about 20 MiB."""


class ServicesFileError(ValueError):
    """The Services file is not YAML or JSON we read (the CLI exits 2)."""


@dataclass(frozen=True)
class PlanProblem:
    service: str | None
    """`namespace/name`, or None for a problem not tied to one Service."""
    ips: tuple[str, ...]
    reason: str
    blocks: bool = False
    """True for a Service that blocks the config change (text output groups these)."""

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "ips": list(self.ips), "reason": self.reason}


@dataclass
class ServiceResult:
    ips: list[str] = field(default_factory=list)
    pool: str | None = None
    events: list[Event] = field(default_factory=list)
    type: str = ""
    notes: list[str] = field(default_factory=list)
    """Assumptions the replay made (text output only), e.g. clusterIPs a manifest lacks."""

    def to_json(self) -> dict[str, Any]:
        return {"ips": self.ips, "pool": self.pool, "events": [e.to_dict() for e in self.events]}


@dataclass
class Plan:
    accepted: bool
    problems: list[PlanProblem] = field(default_factory=list)
    services: dict[str, ServiceResult] = field(default_factory=dict)
    change: bool = False
    """True when a current config was given (the answer is about switching configs)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "problems": [p.to_json() for p in self.problems],
            "services": {k: self.services[k].to_json() for k in sorted(self.services)},
        }


# ---- reading the Services file -----------------------------------------------------------


def load_services(text: str) -> tuple[list[dict[str, Any]], list[PlanProblem]]:
    """Service objects from a v1 `List`, a `ServiceList`, one Service, or several YAML
    documents (JSON is YAML too), read like every other input (docs/config.md, limits).
    Other Kubernetes kinds are skipped silently (a whole manifest may be passed); anything
    that is not a Kubernetes object is a problem; text that is not YAML we read raises
    ServicesFileError."""
    return services_of(_documents(text))


def services_of(documents: list[Any]) -> tuple[list[dict[str, Any]], list[PlanProblem]]:
    """`load_services` of documents already read (`plan --live` has them as JSON data)."""
    services: list[dict[str, Any]] = []
    problems: list[PlanProblem] = []
    for number, doc in enumerate(documents, start=1):
        where = f"document {number}" if len(documents) > 1 else "the Services file"
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(
                PlanProblem(None, (), f"{where}: not a Kubernetes object ({_kind_of(doc)})")
            )
            continue
        kind = doc.get("kind")
        if kind in ("List", "ServiceList") or (kind is None and "items" in doc):
            items = doc.get("items")
            if not isinstance(items, list):
                problems.append(PlanProblem(None, (), f"{where}: {kind} without an items list"))
                continue
            for index, item in enumerate(items):
                _take(item, f"{where} items[{index}]", kind == "ServiceList", services, problems)
            continue
        _take(doc, where, False, services, problems)
    return services, problems


def _documents(text: str) -> list[Any]:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SERVICES_BYTES:
        raise ServicesFileError(
            f"{size} bytes; at most {MAX_SERVICES_BYTES} are read (docs/config.md, limits)"
        )
    try:
        return plain_documents(text)
    except ConfigError as exc:
        first = exc.problems[0]
        if first.reason.startswith("not valid YAML: "):
            where = f" at line {first.line}" if first.line is not None else ""
            message = f"not YAML{where}: {first.reason.removeprefix('not valid YAML: ')}"
        else:  # a repeated key, a value contradicting its tag
            message = str(first)
        more = len(exc.problems) - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ServicesFileError(message + also) from None


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _take(
    obj: Any,
    where: str,
    implied_service: bool,
    services: list[dict[str, Any]],
    problems: list[PlanProblem],
) -> None:
    if not isinstance(obj, dict):
        problems.append(
            PlanProblem(None, (), f"{where}: not a Kubernetes object ({_kind_of(obj)})")
        )
        return
    kind = obj.get("kind")
    if kind is None and not implied_service:
        if "metadata" in obj and "spec" in obj:
            kind = "Service"  # List items from the raw API omit kind
        else:
            problems.append(
                PlanProblem(None, (), f"{where}: not a Kubernetes object (no kind, no metadata)")
            )
            return
    if kind not in (None, "Service"):
        return
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        problems.append(PlanProblem(None, (), f"{where}: Service without metadata.name"))
        return
    services.append(obj)


# ---- what the API server would have filled in --------------------------------------------


def fill_api_defaults(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A manifest (not yet applied) lacks what the API server adds; the controller needs
    `spec.clusterIPs` for the IP family. Fill it the way the API server would, from
    `spec.clusterIP`, or `spec.ipFamilies`/`spec.ipFamilyPolicy`, or single-stack IPv4."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("clusterIPs"):
        return obj, []
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and cluster_ip != "None":
        ips = [cluster_ip]
        note = f"spec.clusterIPs taken from spec.clusterIP ({cluster_ip})"
    elif spec.get("type") == "LoadBalancer":
        families = spec.get("ipFamilies")
        policy = spec.get("ipFamilyPolicy")
        wanted = (
            [f for f in families if f in ("IPv4", "IPv6")] if isinstance(families, list) else []
        )
        if not wanted:
            wanted = ["IPv4"]
        if policy in ("PreferDualStack", "RequireDualStack"):
            wanted += [f for f in ("IPv4", "IPv6") if f not in wanted]
        else:
            wanted = wanted[:1]
        placeholder = {"IPv4": "0.0.0.0", "IPv6": "::"}
        ips = [placeholder[f] for f in wanted[:2]]
        note = (
            "no spec.clusterIPs (a manifest?): assumed "
            + ("dual-stack" if len(ips) == 2 else f"{wanted[0]} single-stack")
            + " as the API server would assign"
        )
    else:
        return obj, []
    filled = copy.deepcopy(obj)
    filled["spec"]["clusterIPs"] = ips
    return filled, [note]


# ---- the replay --------------------------------------------------------------------------


def invalid_config(problems: Sequence[str]) -> Plan:
    """The plan for a config that does not parse: nothing can be replayed."""
    return Plan(accepted=False, problems=[PlanProblem(None, (), p) for p in problems])


def run_plan(
    new: Config,
    services: Iterable[Mapping[str, Any]],
    current: Config | None = None,
    problems: Iterable[PlanProblem] = (),
) -> Plan:
    plan = Plan(accepted=True, problems=list(problems), change=current is not None)
    cluster: dict[str, dict[str, Any]] = {}
    for obj in services:
        filled, notes = fill_api_defaults(copy.deepcopy(dict(obj)))
        key = read_service(filled).key
        if key in cluster:
            plan.problems.append(
                PlanProblem(key, (), "Service listed more than once; the first one is used")
            )
            continue
        cluster[key] = filled
        plan.services[key] = ServiceResult(notes=notes)
    order = [read_service(o).key for o in replay_order(cluster.values())]

    ctrl = Controller()
    first = current if current is not None else new
    report = ctrl.bootstrap(first, [cluster[k] for k in order])
    label = "current" if current is not None else "new"
    for claim in report.refused:
        plan.problems.append(
            PlanProblem(
                claim.service,
                claim.ips,
                f"status IPs cannot be kept under the {label} config: {claim.reason}",
            )
        )
    if current is None and report.live is not None and not report.live.accepted:
        # The controller keeps these IPs and refuses the config while they are held.
        plan.accepted = False
        _add_blockers(plan, report.live)
    elif current is not None:
        for claim in report.held:
            plan.problems.append(
                PlanProblem(
                    claim.service,
                    claim.ips,
                    f"holds {', '.join(claim.ips)}, which no pool of the current config owns:"
                    " kept as they are",
                )
            )

    def reconcile_all() -> None:
        written = _pass(ctrl, order, cluster, plan)
        _pass(ctrl, written, cluster, plan)

    reconcile_all()
    if current is not None:
        decision = ctrl.set_config(new)
        if decision.accepted:
            reconcile_all()
        else:
            plan.accepted = False
            _add_blockers(plan, decision)

    for key, obj in cluster.items():
        result = plan.services[key]
        view = read_service(obj)
        result.type = view.type
        result.ips = list(view.status_ips)
        result.pool = ctrl.allocator.pool_of(key)
    return plan


def _add_blockers(plan: Plan, decision: ConfigDecision) -> None:
    if not decision.blockers:
        plan.problems.append(PlanProblem(None, (), decision.message))
    for b in decision.blockers:
        plan.problems.append(
            PlanProblem(
                b.service,
                tuple(str(ip) for ip in b.ips),
                f"cannot own {', '.join(map(str, b.ips))} under the new config: {b.reason}",
                blocks=True,
            )
        )


def _pass(
    ctrl: Controller, keys: Sequence[str], cluster: dict[str, dict[str, Any]], plan: Plan
) -> list[str]:
    written: list[str] = []
    for key in keys:
        obj = cluster[key]
        decision = ctrl.reconcile(key, obj)
        plan.services[key].events.extend(decision.events)
        if decision.load_balancer is not None:
            updated = copy.deepcopy(obj)
            status = updated.get("status")
            if not isinstance(status, dict):
                status = updated["status"] = {}
            status["loadBalancer"] = copy.deepcopy(decision.load_balancer)
            cluster[key] = updated
            written.append(key)
    return written


# ---- text output -------------------------------------------------------------------------


def render_text(plan: Plan) -> str:
    lines: list[str] = []
    blockers = [p for p in plan.problems if p.blocks]
    others = [p for p in plan.problems if not p.blocks]
    if plan.change:
        if plan.accepted:
            lines.append("config change: ACCEPTED")
        elif blockers:
            lines.append(
                "config change: REFUSED ("
                + (
                    "1 Service would lose its"
                    if len(blockers) == 1
                    else f"{len(blockers)} Services would lose their"
                )
                + " addresses)"
            )
        else:
            lines.append("config change: REFUSED")
    elif plan.accepted:
        lines.append("plan under the new config")
    elif blockers:
        lines.append(
            "plan under the new config: REFUSED (Services hold addresses it does not cover; "
            "they keep them)"
        )
    else:
        lines.append("plan under the new config: INVALID CONFIG")
    if blockers:
        lines.append("")
        lines.append("Blocking Services:")
        for p in blockers:
            lines.append(f"  {p.service}  [{' '.join(p.ips)}]  {p.reason}")
    if plan.services:
        lines.append("")
        lines.append("Services:")
        width = max(len(k) for k in plan.services)
        for key in sorted(plan.services):
            r = plan.services[key]
            if r.ips:
                what = " ".join(r.ips) + (f"  (pool {r.pool})" if r.pool else "")
            elif r.type != "LoadBalancer":
                what = f"-  ({r.type}, not a LoadBalancer)"
            else:
                what = "-  (no address)"
            lines.append(f"  {key.ljust(width)}  {what}")
            for note in r.notes:
                lines.append(f"      note: {note}")
            for e in r.events:
                lines.append(f"      {e.type} {e.reason}: {e.message}")
    if others:
        lines.append("")
        lines.append("Problems:")
        for p in others:
            who = f"{p.service}: " if p.service else ""
            ips = f"[{' '.join(p.ips)}] " if p.ips else ""
            lines.append(f"  {who}{ips}{p.reason}")
    return "\n".join(lines) + "\n"
