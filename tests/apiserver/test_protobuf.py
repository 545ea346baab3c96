"""Protobuf request bodies (`metallb_lab.apiserver.protobuf`): the bytes kubectl 1.32 sent for
`kubectl create ...` (captured from its requests) read into the objects written out here, and
kubectl's own creates through the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.protobuf import ProtobufError, UnreadableError, decode

from .conftest import Kubectl

# kubectl create configmap cm1 --from-literal=a=b --from-literal=c=d
CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d617012250a130a03636d3112001a0022002a003200380042"
    "0012060a016112016212060a01631201641a002200"
)
# kubectl create service loadbalancer lb1 --tcp=80:8080
SERVICE = bytes.fromhex(
    "6b3873000a0d0a027631120753657276696365126c0a1f0a036c623112001a0022002a003200380042005a"
    "0a0a0361707012036c623112450a1b0a0738302d38303830120354435018502207080010903f1a00280012"
    "0a0a0361707012036c62311a00220c4c6f616442616c616e6365723a00420052005a00600068001a020a00"
    "1a002200"
)
# kubectl create secret generic s1 --from-literal=a=b
SECRET = bytes.fromhex(
    "6b3873000a0c0a0276311206536563726574121e0a120a02733112001a0022002a00320038004200120"
    "60a01611201621a001a002200"
)


def test_kubectl_bodies_read_as_their_json() -> None:
    assert decode(CONFIGMAP) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm1"},
        "data": {"a": "b", "c": "d"},
    }
    assert decode(SERVICE) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "lb1", "labels": {"app": "lb1"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "lb1"},
            "type": "LoadBalancer",
        },
    }
    assert decode(SECRET) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1"},
        "data": {"a": "Yg=="},  # the bytes b"b", base64 as in JSON
    }


def test_pointer_fields_keep_their_zero_values() -> None:
    # ServiceSpec: allocateLoadBalancerNodePorts (20) = false, internalTrafficPolicy (22) = ""
    # is sent because Go's pointer is set; a plain field (publishNotReadyAddresses, 13) false is
    # the zero value and dropped, as JSON's omitempty drops it.
    spec = bytes([0xA0, 0x01, 0x00, 0x68, 0x00])
    raw = bytes([0x12, len(spec)]) + spec
    type_meta = b"\x0a\x02v1\x12\x07Service"
    envelope = b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12" + bytes([len(raw)]) + raw
    assert decode(b"k8s\x00" + envelope)["spec"] == {"allocateLoadBalancerNodePorts": False}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\x00\x01", UnreadableError),  # no magic
        (b"k8s\x00\x0a\x0d\x0a\x02v1\x12\x07Unknown", UnreadableError),  # a kind not read here
        (CONFIGMAP[:-9], ProtobufError),  # truncated
        (b"k8s\x00\x0b", ProtobufError),  # wire type 3
    ],
)
def test_unreadable_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(body)


def _post(api: ApiServer, path: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(api.url + path, data=body, method="POST")
    req.add_header("Content-Type", "application/vnd.kubernetes.protobuf")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_protobuf_create_answers_json_and_bad_bodies_are_refused(api: ApiServer) -> None:
    code, created = _post(api, "/api/v1/namespaces/default/configmaps", CONFIGMAP)
    assert code == 201 and created["data"] == {"a": "b", "c": "d"}
    assert _post(api, "/api/v1/namespaces/default/configmaps", b"\x00\x01")[0] == 415
    assert _post(api, "/api/v1/namespaces/default/configmaps", CONFIGMAP[:-9])[0] == 400


def test_kubectl_create_of_builtin_kinds(api: ApiServer, kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "made")
    kubectl("create", "configmap", "cm", "-n", "made", "--from-literal=k=v")
    kubectl("create", "secret", "generic", "s", "-n", "made", "--from-literal=k=v")
    kubectl("create", "service", "loadbalancer", "lb", "-n", "made", "--tcp=80:8080")
    assert api.get("namespaces", "made")["status"] == {"phase": "Active"}
    assert api.get("configmaps", "cm", "made")["data"] == {"k": "v"}
    assert api.get("secrets", "s", "made")["data"] == {"k": "dg=="}
    spec = api.get("services", "lb", "made")["spec"]
    assert spec["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in spec["ports"]] == [
        (80, 8080, "TCP")
    ]
    assert spec["ports"][0]["nodePort"] >= 30000  # allocated, as for a JSON create
