"""Endpoint normalisation: slices vs Endpoints, readiness (not-ready wins), node identity."""

from __future__ import annotations

from typing import Any

from metallb_py.speaker.endpoints import (
    ServiceEndpoints,
    from_endpoint_slices,
    from_endpoints,
    slice_endpoint_node,
)


def slice_(service: str | None, endpoints: list[Any], name: str = "s") -> dict:
    labels = {"kubernetes.io/service-name": service} if service is not None else {}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "addressType": "IPv4",
        "endpoints": endpoints,
    }


def test_no_slices_is_no_endpoint_object():
    assert from_endpoint_slices([]) is None
    # Slices without the service-name label (or for another Service) do not count either.
    assert from_endpoint_slices([slice_(None, [{"addresses": ["192.0.2.5"]}])]) is None
    other = slice_("other", [{"addresses": ["192.0.2.5"], "nodeName": "n1"}])
    assert from_endpoint_slices([other], service_name="web") is None


def test_empty_slice_exists_but_has_nothing_ready():
    eps = from_endpoint_slices([slice_("web", [])], service_name="web")
    assert eps == ServiceEndpoints()
    assert eps is not None and not eps.has_ready


def test_slice_readiness_true_or_absent():
    eps = from_endpoint_slices(
        [
            slice_(
                "web",
                [
                    {"addresses": ["192.0.2.1"], "nodeName": "n1", "conditions": {"ready": True}},
                    {"addresses": ["192.0.2.2"], "nodeName": "n2", "conditions": {}},
                    {"addresses": ["192.0.2.3"], "nodeName": "n3"},
                    {"addresses": ["192.0.2.4"], "nodeName": "n4", "conditions": {"ready": None}},
                    {"addresses": ["192.0.2.5"], "nodeName": "n5", "conditions": {"ready": False}},
                ],
            )
        ]
    )
    assert eps is not None
    assert dict(eps.ready) == {
        "192.0.2.1": "n1",
        "192.0.2.2": "n2",
        "192.0.2.3": "n3",
        "192.0.2.4": "n4",
    }
    assert eps.ready_nodes() == {"n1", "n2", "n3", "n4"}
    assert not eps.ready_on("n5")


def test_not_ready_wins_across_slices_and_order():
    ready = slice_("web", [{"addresses": ["192.0.2.1"], "nodeName": "n1"}], name="a")
    not_ready = slice_(
        "web",
        [{"addresses": ["192.0.2.1"], "nodeName": "n1", "conditions": {"ready": False}}],
        name="b",
    )
    for order in ([ready, not_ready], [not_ready, ready]):
        eps = from_endpoint_slices(order)
        assert eps is not None and not eps.has_ready and eps.ready_nodes() == frozenset()


def test_node_name_first_then_topology_fallbacks():
    assert (
        slice_endpoint_node({"nodeName": "a", "topology": {"kubernetes.io/hostname": "b"}}) == "a"
    )
    assert slice_endpoint_node({"topology": {"kubernetes.io/hostname": "b"}}) == "b"
    assert slice_endpoint_node({"deprecatedTopology": {"kubernetes.io/hostname": "c"}}) == "c"
    assert slice_endpoint_node({"nodeName": "", "topology": {"kubernetes.io/hostname": "b"}}) == "b"
    assert slice_endpoint_node({"topology": {"zone": "x"}}) == ""
    eps = from_endpoint_slices(
        [
            slice_(
                "web",
                [
                    {"addresses": ["192.0.2.1"], "nodeName": "n1"},
                    {"addresses": ["192.0.2.2"], "topology": {"kubernetes.io/hostname": "n2"}},
                    {"addresses": ["192.0.2.3"]},
                ],
            )
        ]
    )
    assert eps is not None
    assert dict(eps.ready) == {"192.0.2.1": "n1", "192.0.2.2": "n2", "192.0.2.3": ""}
    # An endpoint without node identity is ready but is on no node: `Local` cannot use it.
    assert eps.ready_nodes() == {"n1", "n2"}
    assert eps.has_ready
    assert not eps.ready_on("")


def test_addresses_are_canonical_so_spellings_meet():
    eps = from_endpoint_slices(
        [
            slice_("web", [{"addresses": ["2001:DB8:0:0::1"], "nodeName": "n1"}], name="a"),
            slice_(
                "web",
                [{"addresses": ["2001:db8::1"], "nodeName": "n1", "conditions": {"ready": False}}],
                name="b",
            ),
        ]
    )
    assert eps is not None and not eps.has_ready


def test_endpoints_object():
    obj = {
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {
                "addresses": [
                    {"ip": "192.0.2.1", "nodeName": "n1"},
                    {"ip": "192.0.2.2", "nodeName": "n2"},
                    {"ip": "192.0.2.9"},
                ],
                "notReadyAddresses": [{"ip": "192.0.2.3", "nodeName": "n3"}],
                "ports": [{"port": 80}],
            },
            # The same address not ready for another port set: not-ready wins.
            {"notReadyAddresses": [{"ip": "192.0.2.2", "nodeName": "n2"}], "ports": [{"port": 81}]},
        ],
    }
    eps = from_endpoints(obj)
    assert eps is not None
    assert dict(eps.ready) == {"192.0.2.1": "n1", "192.0.2.9": ""}
    assert eps.ready_nodes() == {"n1"}
    assert eps.ready_on("n1") and not eps.ready_on("n2") and not eps.ready_on("n3")


def test_endpoints_missing_or_empty():
    assert from_endpoints(None) is None
    eps = from_endpoints({"metadata": {"name": "web"}})
    assert eps is not None and not eps.has_ready


def test_slices_and_endpoints_agree():
    """The same endpoints given in both shapes normalise to the same value."""
    slices = [
        slice_(
            "web",
            [
                {"addresses": ["192.0.2.1"], "nodeName": "n1"},
                {"addresses": ["192.0.2.2"], "nodeName": "n2", "conditions": {"ready": False}},
            ],
        )
    ]
    endpoints = {
        "subsets": [
            {
                "addresses": [{"ip": "192.0.2.1", "nodeName": "n1"}],
                "notReadyAddresses": [{"ip": "192.0.2.2", "nodeName": "n2"}],
            }
        ]
    }
    assert from_endpoint_slices(slices) == from_endpoints(endpoints)


def test_garbage_is_skipped_not_fatal():
    garbage: list[Any] = [
        "nonsense",
        slice_("web", ["x", {"addresses": "192.0.2.1"}, {"addresses": [5, None, ""]}]),
    ]
    eps = from_endpoint_slices(garbage)
    assert eps == ServiceEndpoints()
    assert (
        from_endpoints({"subsets": [None, {"addresses": [None, {"ip": 3}]}]}) == ServiceEndpoints()
    )
