"""List semantics: resourceVersion / resourceVersionMatch, consistent pagination, 410s."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from metallb_lab.apiserver import ApiServer
from tests.apiserver.conftest import raw, status_of


def cm(name: str, value: str = "v") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }


def names(result: Any) -> list[str]:
    return [i.metadata.name for i in result.items]


def test_list_carries_the_current_version(core: Any, api: ApiServer) -> None:
    api.create(cm("a"))
    listed = core.list_namespaced_config_map("default")
    assert int(listed.metadata.resource_version) == api.resource_version
    assert core.list_namespaced_config_map("default", resource_version="0").items


def test_exact_version_shows_the_past(core: Any, api: ApiServer) -> None:
    api.create(cm("a", "1"))
    then = core.list_namespaced_config_map("default").metadata.resource_version
    api.patch("configmaps", "a", {"data": {"k": "2"}})
    api.create(cm("b"))
    api.delete("configmaps", "a")
    past = core.list_namespaced_config_map(
        "default", resource_version=then, resource_version_match="Exact"
    )
    assert names(past) == ["a"] and past.items[0].data == {"k": "1"}
    assert past.metadata.resource_version == then
    now = core.list_namespaced_config_map(
        "default", resource_version=then, resource_version_match="NotOlderThan"
    )
    assert names(now) == ["b"]


def test_exact_version_after_expiry_is_410(core: Any, api: ApiServer) -> None:
    then = str(api.resource_version)
    api.create(cm("a"))
    api.expire_history()
    with pytest.raises(client.ApiException) as info:
        core.list_namespaced_config_map(
            "default", resource_version=then, resource_version_match="Exact"
        )
    assert info.value.status == 410 and status_of(info.value)["reason"] == "Expired"


def test_bad_list_options_are_400(api: ApiServer) -> None:
    for query in ("resourceVersionMatch=Exact", "resourceVersion=0&resourceVersionMatch=Exact",
                  "resourceVersion=abc", "resourceVersionMatch=Sometimes&resourceVersion=1"):  # fmt: skip
        code, body, _ = raw(api, "GET", f"/api/v1/configmaps?{query}")
        assert code == 400, query
        assert body["reason"] == "BadRequest"


def test_pagination_is_a_consistent_snapshot(core: Any, api: ApiServer) -> None:
    for i in range(7):
        api.create(cm(f"c{i}"))
    first = core.list_namespaced_config_map("default", limit=3)
    assert names(first) == ["c0", "c1", "c2"]
    assert first.metadata.remaining_item_count == 4
    # Changes after the first page do not show in later pages.
    api.delete("configmaps", "c4")
    api.create(cm("c9"))
    api.patch("configmaps", "c5", {"data": {"k": "new"}})
    second = core.list_namespaced_config_map("default", limit=3, _continue=first.metadata._continue)
    assert names(second) == ["c3", "c4", "c5"]
    assert second.items[2].data == {"k": "v"}
    third = core.list_namespaced_config_map("default", limit=3, _continue=second.metadata._continue)
    assert names(third) == ["c6"] and not third.metadata._continue
    assert third.metadata.resource_version == first.metadata.resource_version


def test_pagination_with_selector(core: Any, api: ApiServer) -> None:
    for i in range(6):
        api.create(
            {
                **cm(f"c{i}"),
                "metadata": {"name": f"c{i}", "labels": {"even": str(i % 2 == 0).lower()}},
            }
        )
    page = core.list_namespaced_config_map("default", label_selector="even=true", limit=2)
    assert names(page) == ["c0", "c2"] and page.metadata._continue
    rest = core.list_namespaced_config_map(
        "default", label_selector="even=true", limit=2, _continue=page.metadata._continue
    )
    assert names(rest) == ["c4"] and not rest.metadata._continue


def test_expired_continue_token_is_410(core: Any, api: ApiServer) -> None:
    for i in range(3):
        api.create(cm(f"c{i}"))
    first = core.list_namespaced_config_map("default", limit=1)
    api.create(cm("later"))
    api.expire_history()
    with pytest.raises(client.ApiException) as info:
        core.list_namespaced_config_map("default", limit=1, _continue=first.metadata._continue)
    assert info.value.status == 410
    assert "continue parameter is too old" in status_of(info.value)["message"]
    code, _, _ = raw(api, "GET", "/api/v1/configmaps?continue=garbage!")
    assert code == 400


def test_list_items_omit_kind_like_upstream(api: ApiServer) -> None:
    api.create(cm("a"))
    code, body, _ = raw(api, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200 and body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert "kind" not in body["items"][0]
