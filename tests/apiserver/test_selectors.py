"""Label and field selectors: the parser on its own, then through the real client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.selectors import (
    field_value,
    parse_field_selector,
    parse_label_selector,
)
from tests.apiserver.conftest import status_of

OBJ = {"metadata": {"name": "n", "labels": {"app": "web", "tier": "front", "n": "7"}}}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("app notin (db)", True),
        ("missing notin (db)", True),
        ("app notin (web)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app in (web),!missing,tier", True),
        ("n>5", True),
        ("n<5", False),
        ("app>5", False),
        ("missing=", False),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(OBJ) is expected


@pytest.mark.parametrize(
    "selector", ["app=(", "=x", "a b", "app in ()", "app=in valid", "!", "x,,y"]
)
def test_bad_label_selector_is_400(selector: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(selector)
    assert info.value.code == 400


def test_field_selector() -> None:
    allowed = ("metadata.name", "metadata.namespace", "spec.unschedulable", "source")
    obj = {"metadata": {"name": "a,b", "namespace": "ns"}, "source": {"component": "c"}}
    assert parse_field_selector(r"metadata.name=a\,b", allowed).matches(obj)
    assert parse_field_selector("metadata.namespace!=other", allowed).matches(obj)
    assert not parse_field_selector("metadata.namespace==other", allowed).matches(obj)
    assert parse_field_selector("spec.unschedulable=false", allowed).matches(obj)
    assert field_value(obj, "source") == "c"
    with pytest.raises(ApiError) as info:
        parse_field_selector("spec.nodeName=x", allowed)
    assert info.value.code == 400 and "not supported" in info.value.message


def test_selectors_through_the_client(core: Any, api: ApiServer) -> None:
    for name, labels in (("a", {"app": "web"}), ("b", {"app": "db"}), ("c", {})):
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )

    def names(**kwargs: str) -> list[str]:
        return sorted(
            i.metadata.name for i in core.list_namespaced_config_map("default", **kwargs).items
        )

    assert names(label_selector="app=web") == ["a"]
    assert names(label_selector="app!=web") == ["b", "c"]
    assert names(label_selector="app in (web,db)") == ["a", "b"]
    assert names(label_selector="app notin (web)") == ["b", "c"]
    assert names(label_selector="app") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    assert names(field_selector="metadata.namespace=default", label_selector="app=db") == ["b"]
    with pytest.raises(client.ApiException) as info:
        core.list_namespaced_config_map("default", field_selector="data.x=1")
    assert status_of(info.value)["message"] == "field label not supported: data.x"


def test_pod_and_node_field_selectors(core: Any) -> None:
    for name, node in (("p1", "node-a"), ("p2", "node-b")):
        core.create_namespaced_pod("default", client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c", image="i")]),
        ))  # fmt: skip
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-b")
    assert [p.metadata.name for p in pods.items] == ["p2"]
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="node-a")))
    nodes = core.list_node(field_selector="metadata.name=node-a,spec.unschedulable=false")
    assert [n.metadata.name for n in nodes.items] == ["node-a"]
