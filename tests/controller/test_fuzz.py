"""Garbage in: no exception may escape the controller's decision or the plan's file reader
(`load_services`: Services or ServicesFileError, within a time bound per input)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.controller.plan import ServicesFileError, load_services, run_plan
from metallb_py.controller.reconcile import Outcome
from tests.config.yaml_mutations import bounded, mutated, seeds
from tests.controller.helpers import config, pool, ready, svc

CFG = config(pool("p", "192.0.2.0/28", "2001:db8::/124"), pool("q", "198.51.100.0/30"))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["192.0.2.1", "2001:db8::1", "LoadBalancer", "Local", "p", "::ffff:1.2.3.4"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)

PATHS = [
    ("metadata",),
    ("metadata", "annotations"),
    ("metadata", "annotations", "metallb.universe.tf/loadBalancerIPs"),
    ("metadata", "annotations", "metallb.universe.tf/address-pool"),
    ("metadata", "annotations", "metallb.universe.tf/allow-shared-ip"),
    ("spec",),
    ("spec", "type"),
    ("spec", "clusterIPs"),
    ("spec", "ports"),
    ("spec", "selector"),
    ("spec", "externalTrafficPolicy"),
    ("spec", "loadBalancerIP"),
    ("status",),
    ("status", "loadBalancer"),
    ("status", "loadBalancer", "ingress"),
]


def plant(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    here: Any = obj
    for part in path[:-1]:
        if not isinstance(here, dict):
            return
        here = here.setdefault(part, {})
    if isinstance(here, dict):
        here[path[-1]] = value


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(PATHS), json_values), min_size=1, max_size=4),
    st.booleans(),
)
def test_reconcile_never_raises(
    garbage: list[tuple[tuple[str, ...], Any]], with_status: bool
) -> None:
    c = ready(CFG)
    obj = svc("a", status_ips=("192.0.2.3",) if with_status else ())
    for path, value in garbage:
        plant(obj, path, copy.deepcopy(value))
    before = copy.deepcopy(obj)
    for _ in range(2):
        d = c.reconcile("default/a", obj)
        assert isinstance(d.outcome, Outcome)
        assert d.load_balancer is None or isinstance(d.load_balancer, dict)
    assert obj == before  # the input is never modified
    c.allocator.verify()
    c.reconcile("default/a", None)
    assert c.allocator.allocations() == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_plan_of_arbitrary_documents_never_raises(docs: list[Any]) -> None:
    import yaml

    text = yaml.safe_dump_all(docs)
    services, problems = load_services(text)
    result = run_plan(CFG, services, None, problems)
    assert result.to_json()["accepted"] is True


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_services_reader_on_arbitrary_text(text: str) -> None:
    try:
        services, _ = load_services(text)
    except ServicesFileError:
        return
    run_plan(CFG, services)


SERVICES_SEEDS = seeds(
    "tests/controller/data/blog-cluster.yaml", "tests/controller/data/blog-manifests.yaml"
)


@bounded(400)
@given(text=mutated(SERVICES_SEEDS))
def test_services_files_mutated(text: str) -> None:
    """Cut, re-indented, re-tagged, aliased (also cyclically), bombed and deepened files."""
    try:
        services, problems = load_services(text)
    except ServicesFileError as exc:
        assert str(exc)
        return
    result = run_plan(CFG, services, None, problems)
    json.dumps(result.to_json())
