"""The pure readers of Kubernetes objects: wrong types read as absent, and are reported with
their path only when the caller collects problems."""

from __future__ import annotations

from typing import Any

from metallb_py.k8s.objects import (
    is_terminating,
    labels_of,
    mapping,
    name_of,
    node_ready,
    pod_running_on,
    sequence,
    string,
    string_map,
    value_at,
)


def test_wrong_types_read_as_absent_silently() -> None:
    assert mapping(None) == {}
    assert mapping([1]) == {}
    assert sequence("abc") == ()
    assert sequence(None) == ()
    assert sequence((1, 2)) == (1, 2)
    assert string(5) == ""
    assert string_map({"a": "b", "c": 1, 2: "d"}) == {"a": "b"}


def test_problems_name_the_path() -> None:
    problems: list[str] = []
    assert mapping("x", "spec", problems) == {}
    assert sequence({}, "spec.ports", problems) == ()
    assert string(7, "spec.type", problems) == ""
    assert string_map({"a": 1}, "metadata.labels", problems) == {}
    assert mapping(None, "status", problems) == {}  # absent is not a problem
    assert problems == [
        "spec: expected a mapping, got str",
        "spec.ports: expected a list, got dict",
        "spec.type: expected a string, got int 7",
        "metadata.labels: entry 'a': 1 is not a string to string pair",
    ]


def test_value_at_follows_mappings_only() -> None:
    pod = {"status": {"phase": "Running"}, "spec": ["not", "a", "mapping"]}
    assert value_at(pod, "status", "phase") == "Running"
    assert value_at(pod, "status", "missing") is None
    assert value_at(pod, "spec", "nodeName") is None
    assert value_at(None, "metadata") is None


def _node(ready: str | None, **metadata: Any) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": metadata, "status": {"conditions": conditions}}


def test_node_readers() -> None:
    assert node_ready(_node("True")) is True
    assert node_ready(_node("False")) is False
    assert node_ready(_node("Unknown")) is False
    assert node_ready(_node(None)) is None
    assert node_ready({"status": {"conditions": "garbage"}}) is None
    node = _node("True", name="n1", labels={"rack": "r1", "bad": None})
    assert name_of(node) == "n1"
    assert labels_of(node) == {"rack": "r1"}
    assert labels_of(None) == {}
    assert name_of({"metadata": {"name": 3}}) == ""


def test_pod_running_on() -> None:
    pod: dict[str, Any] = {
        "metadata": {"name": "speaker-x"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    assert pod_running_on(pod) == "n1"
    assert not is_terminating(pod)
    assert pod_running_on({**pod, "status": {"phase": "Pending"}}) == ""
    deleting = {**pod, "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}
    assert is_terminating(deleting)
    assert pod_running_on(deleting) == ""
