"""`metallb-py config convert`: CRDs <-> ConfigMap, losses named, bad input refused."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_py.addons import convert as conv
from metallb_py.addons import crds
from metallb_py.cli import main
from metallb_py.config import BgpType, parse_config, read_config_document


def run(text: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["config", "convert", *args, "-"], input=textwrap.dedent(text))


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def config_of(text: str, mode: str = "native"):
    return parse_config(read_config_document(text).text, BgpType(mode))


FULL_CRDS = """\
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: lb}
spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3, echoMode: false}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-a, namespace: lb, labels: {rack: a}}
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  holdTime: 1m30s
  keepaliveTime: 30s
  bfdProfile: fast
  password: s3cret
  nodeSelectors:
  - matchLabels: {rack: a}
    matchExpressions: [{key: speed, operator: NotIn, values: [slow]}]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: lb}
spec:
  communities:
  - {name: no-advertise, value: "65535:65282"}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: lb, labels: {exposure: internet}}
spec: {addresses: [198.51.100.0/24], autoAssign: false, avoidBuggyIPs: true}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: lb}
spec: {addresses: ["192.0.2.240/28", "203.0.113.10-203.0.113.20"]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: internet, namespace: lb}
spec:
  aggregationLength: 32
  localPref: 100
  communities: [no-advertise, "64512:1"]
  ipAddressPoolSelectors:
  - matchLabels: {exposure: internet}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: lb}
spec: {ipAddressPools: [lan]}
"""


def test_crds_to_configmap_and_back_is_identity():
    to_cm = run(FULL_CRDS, "--bgp-type", "frr", "--from", "crds", "--to", "configmap")
    assert to_cm.exit_code == 0, to_cm.output
    (cm,) = docs(to_cm.stdout)
    assert cm["metadata"] == {
        "name": "config",
        "namespace": "lb",
        "annotations": {
            crds.ORIGINALS_ANNOTATION: cm["metadata"]["annotations"][crds.ORIGINALS_ANNOTATION]
        },
    }
    config = config_of(to_cm.stdout, "frr")
    (peer,) = config.peers
    assert (peer.hold_time, peer.keepalive_time, peer.bfd_profile) == (90, 30, "fast")
    assert not peer.selects({"rack": "b"}) and peer.selects({"rack": "a"})
    public = config.pool("public")
    assert public is not None and public.protocol.value == "bgp" and not public.auto_assign
    (adv,) = public.bgp_advertisements
    assert [str(c) for c in adv.communities] == ["64512:1", "65535:65282"]
    assert adv.localpref == 100
    lan = config.pool("lan")
    assert lan is not None and lan.protocol.value == "layer2"
    back = run(to_cm.stdout, "--bgp-type", "frr", "--from", "configmap", "--to", "crds")
    assert back.exit_code == 0, back.output
    assert docs(back.stdout) == docs(FULL_CRDS)


def test_edited_configmap_gives_canonical_crds_keeping_names_that_still_apply():
    to_cm = run(FULL_CRDS, "--bgp-type", "frr", "--from", "crds", "--to", "configmap")
    edited = to_cm.stdout.replace("localpref: 100", "localpref: 200")
    assert edited != to_cm.stdout
    back = run(edited, "--bgp-type", "frr", "--from", "configmap", "--to", "crds")
    assert back.exit_code == 0, back.output
    objs = {(d["kind"], d["metadata"]["name"]): d for d in docs(back.stdout)}
    assert objs[("BGPPeer", "tor-a")]["metadata"]["labels"] == {"rack": "a"}
    assert objs[("IPAddressPool", "public")]["metadata"]["labels"] == {"exposure": "internet"}
    assert objs[("Community", "aliases")]["spec"]["communities"][0]["name"] == "no-advertise"
    assert objs[("BGPAdvertisement", "public")]["spec"]["localPref"] == 200
    assert objs[("L2Advertisement", "lan")]["spec"] == {"ipAddressPools": ["lan"]}
    # What the generated CRDs say is what the edited ConfigMap says.
    again = run(back.stdout, "--bgp-type", "frr", "--from", "crds", "--to", "configmap")
    assert config_of(again.stdout, "frr") == config_of(edited, "frr")


LOSSY = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: both, namespace: metallb-system}
spec:
  addresses: [192.0.2.0/28]
  serviceAllocation: {namespaces: [web]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: unannounced, namespace: metallb-system}
spec: {addresses: [192.0.2.64/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [both, missing], interfaces: [eth0], nodeSelectors: [{matchLabels: {a: b}}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [both], peers: [tor], communities: ["large:1:2:3"]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, vrf: red, passwordSecret: {name: pw}}
"""

LOSS_PATHS = [
    "L2Advertisement/l2.spec.ipAddressPools[1]",
    "L2Advertisement/l2.spec.nodeSelectors",
    "L2Advertisement/l2.spec.interfaces",
    "BGPAdvertisement/bgp.spec.nodeSelectors",
    "BGPAdvertisement/bgp.spec.peers",
    "BGPAdvertisement/bgp.spec.communities[0]",
    "BGPPeer/tor.spec.passwordSecret",
    "BGPPeer/tor.spec.vrf",
    "IPAddressPool/both.spec.serviceAllocation",
    "IPAddressPool/both",
    "IPAddressPool/unannounced",
]


def test_inexpressible_parts_are_named_and_refused_without_allow_loss():
    result = run(LOSSY, "--from", "crds", "--to", "configmap")
    assert result.exit_code == 1
    named = {
        line.split("configmap: ", 1)[1].split(": ", 1)[0]
        for line in result.stderr.splitlines()
        if "cannot express" in line
    }
    assert named == set(LOSS_PATHS) - {"BGPAdvertisement/bgp.spec.nodeSelectors"}
    assert result.stdout == ""
    assert "use --allow-loss" in result.stderr


def test_allow_loss_writes_the_rest_and_lists_losses_in_the_output():
    result = run(LOSSY, "--from", "crds", "--to", "configmap", "--allow-loss")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("# NOT CONVERTED:") == 10
    config = config_of(result.stdout)
    assert [p.name for p in config.pools] == ["both"]
    assert config.pools[0].protocol.value == "bgp"
    assert config.pools[0].bgp_advertisements[0].communities == ()


def test_configmap_to_crds_names_pools_that_cannot_be_object_names():
    cm = """\
    address-pools:
    - {name: My_Pool, protocol: layer2, addresses: [192.0.2.0/28]}
    """
    result = run(cm, "--from", "configmap", "--to", "crds")
    assert result.exit_code == 1
    assert "address-pools[0].name: not a valid Kubernetes object name" in result.stderr


def test_raw_config_and_quoted_community_survive_both_ways():
    cm = """\
    peers:
    - {peer-address: 192.0.2.1, peer-asn: 64501, my-asn: 64500, hold-time: 0, password: 1234}
    bgp-communities: {low: 64512:1}
    address-pools:
    - name: p
      protocol: bgp
      addresses: [198.51.100.0/24]
      bgp-advertisements:
      - {communities: [low, 64512:2]}
      -
    """
    to_crds = run(cm, "--from", "configmap", "--to", "crds")
    assert to_crds.exit_code == 0, to_crds.output
    objs = {(d["kind"], d["metadata"]["name"]): d for d in docs(to_crds.stdout)}
    peer = objs[("BGPPeer", "peer-192.0.2.1")]["spec"]
    assert peer["holdTime"] == "0" and peer["password"] == "1234"
    assert objs[("Community", "communities")]["spec"]["communities"] == [
        {"name": "low", "value": "64512:1"}
    ]
    assert objs[("BGPAdvertisement", "p-1")]["spec"]["communities"] == ["low", "64512:2"]
    assert objs[("BGPAdvertisement", "p-2")]["spec"] == {"ipAddressPools": ["p"]}
    back = run(to_crds.stdout, "--from", "crds", "--to", "configmap")
    assert back.exit_code == 0, back.output
    assert config_of(back.stdout) == parse_config(textwrap.dedent(cm))


@pytest.mark.parametrize(
    ("source", "text", "expected"),
    [
        (
            "crds",
            "apiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: a}\n",
            "apiVersion: IPAddressPool needs apiVersion metallb.io/v1beta1, got 'metallb.io/v1alpha1'",
        ),
        (
            "crds",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\n",
            "kind: expected a MetalLB custom resource",
        ),
        ("crds", "- a\n", "expected a Kubernetes object (a mapping), got a list"),
        (
            "crds",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {adresses: [192.0.2.0/28]}\n",
            "spec.adresses: unknown key 'adresses' in IPAddressPool spec: did you mean 'addresses'?",
        ),
        (
            "crds",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nspec: {addresses: [192.0.2.0/28]}\n",
            "metadata: IPAddressPool needs 'metadata'",
        ),
        (
            "configmap",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\n",
            "no ConfigMap found",
        ),
        (
            "configmap",
            "address-pools:\n- name: a\n  protocol: layer3\n  addresses: [192.0.2.0/28]\n",
            "address-pools[0].protocol",
        ),
        (
            "helm",
            "kontena-network-lb: {enabled: true}\n",
            "these look like kontena values, not helm values",
        ),
        ("helm", "controller: {enabled: true}\n", "carry no MetalLB config"),
        ("kontena", "'just a string'\n", "Kontena values must be a mapping"),
        (
            "konvoy",
            "kind: ClusterProvisioner\napiVersion: konvoy.mesosphere.io/v1beta2\n",
            "no Konvoy document of kind ClusterConfiguration found (found: ClusterProvisioner)",
        ),
    ],
)
def test_bad_input(source: str, text: str, expected: str):
    result = CliRunner().invoke(
        main, ["config", "convert", "--from", source, "--to", "crds", "-"], input=text
    )
    assert result.exit_code == 1, result.output
    assert expected in result.stderr, result.stderr


def test_config_problem_lines_point_into_the_configmap_file():
    text = textwrap.dedent(
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: config, namespace: metallb-system}
        data:
          config: |
            address-pools:
            - name: a
              protocol: layer3
              addresses: [192.0.2.0/28]
        """
    )
    with pytest.raises(conv.ConfigError) as exc:
        conv.convert(text, "configmap", "crds")
    (problem,) = exc.value.problems
    assert problem.path == "address-pools[0].protocol" and problem.line == 8


def test_list_of_crds_is_accepted():
    items = docs(FULL_CRDS)
    listed = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
    result = conv.convert(listed, "crds", "configmap", BgpType.FRR)
    assert config_of(result.text, "frr") == config_of(
        conv.convert(FULL_CRDS, "crds", "configmap", BgpType.FRR).text, "frr"
    )
