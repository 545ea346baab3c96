"""`metallb-py plan --live`: the Services and the config in force come from the cluster."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from metallb_lab.apiserver import ApiServer
from metallb_py.cli import main

from .conftest import NS
from .test_controller import service

OLD = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.0/29]\n"
GROWN = OLD + "- name: b\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n"
MOVED = "address-pools:\n- name: b\n  protocol: layer2\n  addresses: [198.51.100.0/29]\n"


def with_status(api: ApiServer, name: str, ip: str | None) -> None:
    svc = api.create(service(name))
    if ip:
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
        api.update_status(svc)


def run(kubeconfig: Path, new: Path, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        main,
        [
            "plan",
            "--live",
            "--kubeconfig",
            str(kubeconfig),
            "--config",
            str(new),
            "--output",
            "json",
            *extra,
        ],
    )
    return result.exit_code, json.loads(result.stdout) if result.stdout.startswith("{") else {}


def test_live_plan_accepts_growth_and_names_every_blocker_of_a_move(api, kubeconfig, tmp_path):
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NS},
            "data": {"config": OLD},
        }
    )
    with_status(api, "web", "192.0.2.0")
    with_status(api, "db", "192.0.2.1")
    with_status(api, "new", None)
    grown, moved = tmp_path / "grown.yaml", tmp_path / "moved.yaml"
    grown.write_text(GROWN)
    moved.write_text(MOVED)

    code, out = run(kubeconfig, grown)
    assert code == 0 and out["accepted"] is True
    assert out["services"]["apps/web"]["ips"] == ["192.0.2.0"]
    assert out["services"]["apps/db"]["ips"] == ["192.0.2.1"]
    assert out["services"]["apps/new"]["ips"] == ["192.0.2.2"]

    code, out = run(kubeconfig, moved)
    assert code == 1 and out["accepted"] is False
    blocked = {p["service"]: p["ips"] for p in out["problems"]}
    assert blocked == {
        "apps/web": ["192.0.2.0"],
        "apps/db": ["192.0.2.1"],
        "apps/new": ["192.0.2.2"],
    }
    # Nothing was changed in the cluster by planning.
    assert api.get("configmaps", "config", NS)["data"]["config"] == OLD
    assert not api.get("services", "new", "apps").get("status", {}).get("loadBalancer")


def test_live_plan_without_a_configmap_plans_from_scratch(api, kubeconfig, tmp_path):
    with_status(api, "web", None)
    new = tmp_path / "new.yaml"
    new.write_text(OLD)
    code, out = run(kubeconfig, new)
    assert code == 0
    assert out["services"]["apps/web"]["ips"] == ["192.0.2.0"]


def test_live_plan_usage_errors_and_unreachable_cluster(kubeconfig, tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text(OLD)
    runner = CliRunner()
    both = runner.invoke(main, ["plan", "--live", "--services", "x", "--config", str(new)])
    assert both.exit_code == 2
    neither = runner.invoke(main, ["plan", "--config", str(new)])
    assert neither.exit_code == 2
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(kubeconfig.read_text().replace("127.0.0.1:", "127.0.0.1:1"))
    result = runner.invoke(
        main, ["plan", "--live", "--kubeconfig", str(dead), "--config", str(new)]
    )
    assert result.exit_code == 2
    assert "cannot reach the cluster" in result.stderr


def test_live_plan_judges_against_the_stored_config_in_force(api, kubeconfig, tmp_path):
    """With a refused config in the ConfigMap, the config in force is the stored one
    (issue 11): planning GROWN from there is fine, though GROWN would not fit MOVED."""
    import hashlib

    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NS},
            "data": {"config": MOVED},  # refused: web holds 192.0.2.0
        }
    )
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "config-accepted",
                "namespace": NS,
                "annotations": {
                    "metallb-py.io/config-sha256": hashlib.sha256(OLD.encode()).hexdigest()
                },
            },
            "data": {"config": OLD},
        }
    )
    with_status(api, "web", "192.0.2.0")
    with_status(api, "new", None)
    grown = tmp_path / "grown.yaml"
    grown.write_text(GROWN)
    code, out = run(kubeconfig, grown)
    assert code == 0 and out["accepted"] is True
    assert out["services"]["apps/web"]["ips"] == ["192.0.2.0"]
    assert out["services"]["apps/new"]["ips"] == ["192.0.2.1"]
