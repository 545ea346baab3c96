"""`metallb-py plan` through the real CLI entry point, JSON output, realistic files.

The files in data/ come from the seed examples: the blog's BGP ConfigMap and its Services
(seed 002, including the cluster state its `kubectl get svc` table shows), the Konvoy layer2 and
BGP configs (seed 001) and Kontena's addon values, which are not MetalLB keys (seed 000).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_py.cli import main

DATA = Path(__file__).parent / "data"


def plan(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["plan", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def plan_json(*args: str, stdin: str | None = None) -> tuple[int, dict[str, Any]]:
    code, out, err = plan(*args, "--output", "json", stdin=stdin)
    assert code in (0, 1), err
    return code, json.loads(out)


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(
            yaml.safe_dump_all(content) if isinstance(content, list) else yaml.safe_dump(content)
        )
    return str(path)


def manifest(name: str, created: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "apps"}
    if created:
        metadata["creationTimestamp"] = created
    body = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


# ---- the blog (seed 002) -----------------------------------------------------------------


def test_blog_cluster_keeps_every_address() -> None:
    code, out = plan_json(
        "--config", str(DATA / "blog-configmap.yaml"), "--services", str(DATA / "blog-cluster.yaml")
    )
    assert code == 0
    assert out == {
        "accepted": True,
        "problems": [],
        "services": {
            "default/kubernetes": {"ips": [], "pool": None, "events": []},
            "default/nginx": {"ips": ["192.168.197.0"], "pool": "default", "events": []},
            "default/test-service": {"ips": ["192.168.197.1"], "pool": "default", "events": []},
            "default/test-service-1": {"ips": [], "pool": None, "events": []},
            "default/test-service-3": {
                "ips": ["192.168.197.254"],
                "pool": "default",
                "events": [],
            },
        },
    }


def test_blog_manifests_get_first_address_and_the_requested_one() -> None:
    code, out = plan_json(
        "--config",
        str(DATA / "blog-configmap.yaml"),
        "--services",
        str(DATA / "blog-manifests.yaml"),
    )
    assert code == 0
    assert out["services"] == {
        "default/test-service": {
            "ips": ["192.168.197.0"],
            "pool": "default",
            "events": [
                {
                    "type": "Normal",
                    "reason": "IPAllocated",
                    "message": 'Assigned IP ["192.168.197.0"]',
                }
            ],
        },
        "default/test-service-3": {
            "ips": ["192.168.197.254"],
            "pool": "default",
            "events": [
                {
                    "type": "Normal",
                    "reason": "IPAllocated",
                    "message": 'Assigned IP ["192.168.197.254"]',
                }
            ],
        },
    }


def test_blog_cluster_refuses_a_switch_to_konvoy_bgp_naming_every_service() -> None:
    code, out = plan_json(
        "--current",
        str(DATA / "blog-configmap.yaml"),
        "--config",
        str(DATA / "konvoy-bgp.yaml"),
        "--services",
        str(DATA / "blog-cluster.yaml"),
    )
    assert code == 1
    assert out["accepted"] is False
    assert [(p["service"], p["ips"]) for p in out["problems"]] == [
        ("default/nginx", ["192.168.197.0"]),
        ("default/test-service", ["192.168.197.1"]),
        ("default/test-service-3", ["192.168.197.254"]),
    ]
    assert out["problems"][0]["reason"] == (
        "cannot own 192.168.197.0 under the new config: 192.168.197.0 is not in any pool"
    )
    # Refused: everything stays as it is under the current config.
    assert out["services"]["default/nginx"] == {
        "ips": ["192.168.197.0"],
        "pool": "default",
        "events": [],
    }


def test_avoid_buggy_ips_over_the_blogs_dot0_is_blocked_by_nginx_only(tmp_path: Path) -> None:
    new = write(
        tmp_path,
        "avoid.yaml",
        "address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n"
        "  addresses:\n  - 192.168.197.0/24\n",
    )
    code, out = plan_json(
        "--current",
        str(DATA / "blog-configmap.yaml"),
        "--config",
        new,
        "--services",
        str(DATA / "blog-cluster.yaml"),
    )
    assert code == 1
    assert out["problems"] == [
        {
            "service": "default/nginx",
            "ips": ["192.168.197.0"],
            "reason": "cannot own 192.168.197.0 under the new config: 192.168.197.0 ends in .0 or"
            ' .255 and pool "default" sets avoid-buggy-ips',
        }
    ]


def test_compatible_change_is_accepted_and_rehomes(tmp_path: Path) -> None:
    new = write(
        tmp_path,
        "bigger.yaml",
        "address-pools:\n- name: bigger\n  protocol: bgp\n  addresses:\n  - 192.168.196.0/23\n",
    )
    code, out = plan_json(
        "--current",
        str(DATA / "blog-configmap.yaml"),
        "--config",
        new,
        "--services",
        str(DATA / "blog-cluster.yaml"),
    )
    assert code == 0 and out["accepted"] is True and out["problems"] == []
    assert out["services"]["default/nginx"] == {
        "ips": ["192.168.197.0"],
        "pool": "bigger",
        "events": [],
    }


def test_text_output_of_a_refusal() -> None:
    code, out, _ = plan(
        "--current",
        str(DATA / "blog-configmap.yaml"),
        "--config",
        str(DATA / "konvoy-bgp.yaml"),
        "--services",
        str(DATA / "blog-cluster.yaml"),
    )
    assert code == 1
    assert out.startswith("config change: REFUSED (3 Services would lose their addresses)\n")
    assert "  default/nginx  [192.168.197.0]  cannot own 192.168.197.0" in out


# ---- Konvoy (seed 001) -------------------------------------------------------------------


@pytest.fixture
def thirty(tmp_path: Path) -> str:
    docs = [manifest(f"svc-{i:02d}", created=f"2024-01-01T00:{i:02d}:00Z") for i in range(30)]
    return write(tmp_path, "thirty.yaml", docs)


def test_konvoy_layer2_range_is_handed_out_in_creation_order(thirty: str) -> None:
    code, out = plan_json("--config", str(DATA / "konvoy-layer2.yaml"), "--services", thirty)
    assert code == 0
    got = {k: v["ips"] for k, v in out["services"].items()}
    assert got == {
        **{f"apps/svc-{i:02d}": [f"10.0.50.{25 + i}"] for i in range(26)},
        **{f"apps/svc-{i:02d}": [] for i in range(26, 30)},
    }
    assert out["services"]["apps/svc-29"]["events"] == [
        {
            "type": "Warning",
            "reason": "AllocationFailed",
            "message": 'Failed to allocate IP for "apps/svc-29": no available IPs',
        }
    ]


def test_konvoy_layer2_to_bgp_is_refused_by_all_26(thirty: str) -> None:
    code, out = plan_json(
        "--current",
        str(DATA / "konvoy-layer2.yaml"),
        "--config",
        str(DATA / "konvoy-bgp.yaml"),
        "--services",
        thirty,
    )
    assert code == 1
    assert [p["service"] for p in out["problems"]] == [f"apps/svc-{i:02d}" for i in range(26)]
    # The four that found nothing under the current config are not in the way.
    assert out["services"]["apps/svc-27"]["ips"] == []


def test_without_current_a_fresh_controller_keeps_what_services_hold(tmp_path: Path) -> None:
    """No --current: what a controller started on NEW with nothing stored would do. Upstream
    re-allocated the addresses outside NEW (the Konvoy note: deleting the controller pod forces
    a config in); metallb-py keeps them and refuses NEW while they are held
    (docs/behaviour-differences.md, durable config)."""
    code, out = plan_json(
        "--config", str(DATA / "konvoy-bgp.yaml"), "--services", str(DATA / "blog-cluster.yaml")
    )
    assert code == 1
    assert out["accepted"] is False
    assert out["services"]["default/nginx"]["ips"] == ["192.168.197.0"]
    assert out["services"]["default/test-service"]["ips"] == ["192.168.197.1"]
    assert out["services"]["default/test-service-3"]["ips"] == ["192.168.197.254"]
    for key in ("default/nginx", "default/test-service", "default/test-service-3"):
        assert [e["reason"] for e in out["services"][key]["events"]] == ["KeptOutsideConfig"]
    assert [(p["service"], p["ips"]) for p in out["problems"]] == [
        ("default/nginx", ["192.168.197.0"]),
        ("default/test-service", ["192.168.197.1"]),
        ("default/test-service-3", ["192.168.197.254"]),
    ]
    assert "is not in any pool" in out["problems"][0]["reason"]
    code, text, _ = plan(
        "--config", str(DATA / "konvoy-bgp.yaml"), "--services", str(DATA / "blog-cluster.yaml")
    )
    assert code == 1
    assert text.startswith("plan under the new config: REFUSED")
    assert "default/nginx  [192.168.197.0]" in text


# ---- Kontena (seed 000) and invalid configs ----------------------------------------------


def test_kontena_values_are_not_a_metallb_config() -> None:
    code, out = plan_json(
        "--config", str(DATA / "kontena-values.yaml"), "--services", str(DATA / "blog-cluster.yaml")
    )
    assert code == 1
    assert out["accepted"] is False and out["services"] == {}
    reasons = " ".join(p["reason"] for p in out["problems"])
    assert "address_pools" in reasons and "address-pools" in reasons
    assert all(p["service"] is None for p in out["problems"])


def test_invalid_current_config_is_exit_1(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "address-pools:\n- name: x\n  protocol: nope\n")
    code, out = plan_json(
        "--current",
        bad,
        "--config",
        str(DATA / "konvoy-bgp.yaml"),
        "--services",
        str(DATA / "blog-cluster.yaml"),
    )
    assert code == 1
    assert all(p["reason"].startswith(f"current config {bad}:") for p in out["problems"])


# ---- dual-stack and odd inputs -----------------------------------------------------------


def test_dual_stack_manifest(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "dual.yaml",
        "address-pools:\n- name: dual\n  protocol: layer2\n  addresses:\n"
        "  - 2001:db8::/124\n  - 192.0.2.0/28\n",
    )
    services = write(
        tmp_path,
        "svc.yaml",
        [
            manifest("both", ipFamilyPolicy="RequireDualStack"),
            manifest("six", ipFamilies=["IPv6"]),
            manifest("four"),
        ],
    )
    code, out = plan_json("--config", cfg, "--services", services)
    assert code == 0
    assert {k: v["ips"] for k, v in out["services"].items()} == {
        "apps/both": ["2001:db8::", "192.0.2.0"],
        "apps/four": ["192.0.2.1"],
        "apps/six": ["2001:db8::1"],
    }


def test_json_service_list_from_the_raw_api(tmp_path: Path) -> None:
    items = [manifest("a"), manifest("b")]
    for item in items:
        del item["kind"], item["apiVersion"]
        item["spec"]["clusterIPs"] = ["10.96.0.5"]
    doc = {"kind": "ServiceList", "apiVersion": "v1", "items": items}
    path = write(tmp_path, "list.json", json.dumps(doc))
    code, out = plan_json("--config", str(DATA / "konvoy-bgp.yaml"), "--services", path)
    assert code == 0
    assert out["services"]["apps/a"]["ips"] == ["172.40.100.0"]


def test_services_from_stdin() -> None:
    text = yaml.safe_dump(manifest("a"))
    code, out = plan_json("--config", str(DATA / "konvoy-bgp.yaml"), "--services", "-", stdin=text)
    assert code == 0 and out["services"]["apps/a"]["ips"] == ["172.40.100.0"]


def test_not_kubernetes_objects_are_problems_not_tracebacks(tmp_path: Path) -> None:
    text = (
        "- just\n- a list\n---\nhello\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: skipped}\nspec: {}\n---\n"
        "kind: Service\nmetadata: {}\n---\n"
        "kind: List\nitems: 5\n---\n"
        "foo: bar\n"
    )
    code, out = plan_json(
        "--config", str(DATA / "konvoy-bgp.yaml"), "--services", write(tmp_path, "x.yaml", text)
    )
    assert code == 0
    assert out["services"] == {}
    assert [p["reason"] for p in out["problems"]] == [
        "document 1: not a Kubernetes object (a list)",
        "document 2: not a Kubernetes object (a string)",
        "document 4: Service without metadata.name",
        "document 5: List without an items list",
        "document 6: not a Kubernetes object (no kind, no metadata)",
    ]


def test_malformed_service_fields_become_events(tmp_path: Path) -> None:
    bad_ip = manifest("bad-ip", loadBalancerIP="172.40.100.300")
    bad_note = manifest("bad-note")
    bad_note["metadata"]["annotations"] = {"metallb.universe.tf/allow-shared-ip": 7}
    bad_ports = manifest("bad-ports", ports="80")
    bad_request = manifest("bad-request")
    bad_request["metadata"]["annotations"] = {"metallb.universe.tf/loadBalancerIPs": "a,b,c"}
    services = write(tmp_path, "bad.yaml", [bad_ip, bad_note, bad_ports, bad_request])
    code, out = plan_json("--config", str(DATA / "konvoy-bgp.yaml"), "--services", services)
    assert code == 0
    events = {
        k: [(e["reason"], e["message"]) for e in v["events"]] for k, v in out["services"].items()
    }
    assert events["apps/bad-ip"] == [
        (
            "AllocationFailed",
            'Failed to allocate IP for "apps/bad-ip": invalid spec.loadBalancerIP "172.40.100.300"',
        )
    ]
    assert events["apps/bad-note"][0][0] == "InvalidService"
    assert "metallb.universe.tf/allow-shared-ip" in events["apps/bad-note"][0][1]
    assert events["apps/bad-ports"][0][0] == "InvalidService"
    assert events["apps/bad-request"] == [
        (
            "AllocationFailed",
            'Failed to allocate IP for "apps/bad-request": invalid '
            'metallb.universe.tf/loadBalancerIPs: "a,b,c"',
        )
    ]


def test_duplicates_and_contested_status_ips(tmp_path: Path) -> None:
    first = manifest("a", created="2024-01-01T00:00:00Z", clusterIPs=["10.96.0.1"])
    first["status"] = {"loadBalancer": {"ingress": [{"ip": "172.40.100.9"}]}}
    second = manifest("b", created="2024-02-01T00:00:00Z", clusterIPs=["10.96.0.2"])
    second["status"] = {"loadBalancer": {"ingress": [{"ip": "172.40.100.9"}]}}
    services = write(tmp_path, "dup.yaml", [second, first, first])
    code, out = plan_json("--config", str(DATA / "konvoy-bgp.yaml"), "--services", services)
    assert code == 0
    assert out["problems"][0] == {
        "service": "apps/a",
        "ips": [],
        "reason": "Service listed more than once; the first one is used",
    }
    assert out["problems"][1]["service"] == "apps/b"
    assert out["problems"][1]["ips"] == ["172.40.100.9"]
    assert "already in use by apps/a" in out["problems"][1]["reason"]
    assert out["services"]["apps/a"]["ips"] == ["172.40.100.9"]
    assert out["services"]["apps/b"]["ips"] == ["172.40.100.0"]
    assert [e["reason"] for e in out["services"]["apps/b"]["events"]] == ["IPAllocated"]


# ---- usage errors: exit 2 ----------------------------------------------------------------


def test_unreadable_files_exit_2(tmp_path: Path) -> None:
    code, _, err = plan(
        "--config", str(tmp_path / "missing.yaml"), "--services", str(DATA / "blog-cluster.yaml")
    )
    assert code == 2 and "cannot read" in err
    code, _, err = plan(
        "--config", str(DATA / "konvoy-bgp.yaml"), "--services", str(tmp_path / "nope")
    )
    assert code == 2 and "cannot read" in err
    broken = write(tmp_path, "broken.yaml", "items: [unclosed\n")
    code, _, err = plan("--config", str(DATA / "konvoy-bgp.yaml"), "--services", broken)
    assert code == 2 and "cannot read Services: not YAML at line" in err
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = plan("--config", str(DATA / "konvoy-bgp.yaml"), "--services", str(binary))
    assert code == 2 and "not UTF-8" in err


def test_usage_errors_exit_2() -> None:
    code, _, _ = plan("--config", str(DATA / "konvoy-bgp.yaml"))
    assert code == 2
    code, _, _ = plan("--config", "-", "--services", "-")
    assert code == 2
    code, _, _ = plan(
        "--config",
        str(DATA / "konvoy-bgp.yaml"),
        "--services",
        str(DATA / "blog-cluster.yaml"),
        "--output",
        "xml",
    )
    assert code == 2
