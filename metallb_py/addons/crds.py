"""MetalLB v0.13 custom resources, read as strictly as the config: their schemas, the objects
of a file (or of a v1 List), and the annotation that keeps them on a converted ConfigMap.

v0.13 split the config into IPAddressPool, L2Advertisement, BGPAdvertisement, Community
(metallb.io/v1beta1), BGPPeer (v1beta2) and BFDProfile. The conversions are `from_crds.py`
(objects -> v0.12 config, with losses) and `to_crds.py` (config -> objects, lossless).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from metallb_py.config.decode import ANY, BOOL, TYPED_INT, TYPED_STR, List, StrMap, Struct, read
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.yamlnodes import Path, ProblemLog, child, load_documents, scalar_text
from metallb_py.config.yamltree import describe
from metallb_py.k8s.objects import Obj

GROUP = "metallb.io"
VERSIONS: dict[str, tuple[str, ...]] = {
    "IPAddressPool": ("v1beta1",),
    "L2Advertisement": ("v1beta1",),
    "BGPAdvertisement": ("v1beta1",),
    "Community": ("v1beta1",),
    "BFDProfile": ("v1beta1",),
    "BGPPeer": ("v1beta2", "v1beta1"),
    "AddressPool": ("v1beta1",),
}
"""Kind -> accepted versions; the first one is written."""
DEFAULT_NAMESPACE = "metallb-system"
ORIGINALS_ANNOTATION = "convert.metallb-py.io/crds"
"""ConfigMap annotation holding the CRDs a config was converted from (JSON)."""

_SELECTOR = Struct(
    "label selector",
    {
        "matchLabels": StrMap(TYPED_STR),
        "matchExpressions": List(
            Struct(
                "match expression",
                {"key": TYPED_STR, "operator": TYPED_STR, "values": List(TYPED_STR)},
                ("key", "operator"),
            )
        ),
    },
)
_SELECTORS = List(_SELECTOR)
_NAMES = List(TYPED_STR)
_METADATA = Struct(
    "metadata",
    {
        "name": TYPED_STR,
        "namespace": TYPED_STR,
        "labels": StrMap(TYPED_STR),
        "annotations": StrMap(TYPED_STR),
        # Server-populated fields of `kubectl get -o yaml` output; read and dropped.
        "uid": TYPED_STR,
        "resourceVersion": TYPED_STR,
        "generation": TYPED_INT,
        "creationTimestamp": ANY,
        "managedFields": ANY,
        "finalizers": ANY,
        "ownerReferences": ANY,
        "selfLink": TYPED_STR,
    },
    ("name",),
)
_LEGACY_ADV = Struct(
    "bgpAdvertisement",
    {
        "aggregationLength": TYPED_INT,
        "aggregationLengthV6": TYPED_INT,
        "localPref": TYPED_INT,
        "communities": _NAMES,
    },
)
SPECS: dict[str, Struct] = {
    "IPAddressPool": Struct(
        "IPAddressPool spec",
        {
            "addresses": _NAMES,
            "autoAssign": BOOL,
            "avoidBuggyIPs": BOOL,
            "serviceAllocation": ANY,
        },
        ("addresses",),
    ),
    "L2Advertisement": Struct(
        "L2Advertisement spec",
        {
            "ipAddressPools": _NAMES,
            "ipAddressPoolSelectors": _SELECTORS,
            "nodeSelectors": _SELECTORS,
            "interfaces": _NAMES,
        },
    ),
    "BGPAdvertisement": Struct(
        "BGPAdvertisement spec",
        {
            "aggregationLength": TYPED_INT,
            "aggregationLengthV6": TYPED_INT,
            "localPref": TYPED_INT,
            "communities": _NAMES,
            "ipAddressPools": _NAMES,
            "ipAddressPoolSelectors": _SELECTORS,
            "nodeSelectors": _SELECTORS,
            "peers": _NAMES,
        },
    ),
    "Community": Struct(
        "Community spec",
        {
            "communities": List(
                Struct(
                    "community alias", {"name": TYPED_STR, "value": TYPED_STR}, ("name", "value")
                )
            )
        },
    ),
    "BFDProfile": Struct(
        "BFDProfile spec",
        {
            "receiveInterval": TYPED_INT,
            "transmitInterval": TYPED_INT,
            "detectMultiplier": TYPED_INT,
            "echoInterval": TYPED_INT,
            "echoMode": BOOL,
            "passiveMode": BOOL,
            "minimumTtl": TYPED_INT,
        },
    ),
    "BGPPeer": Struct(
        "BGPPeer spec",
        {
            "myASN": TYPED_INT,
            "peerASN": TYPED_INT,
            "peerAddress": TYPED_STR,
            "sourceAddress": TYPED_STR,
            "peerPort": TYPED_INT,
            "holdTime": TYPED_STR,
            "keepaliveTime": TYPED_STR,
            "routerID": TYPED_STR,
            "nodeSelectors": _SELECTORS,
            "password": TYPED_STR,
            "passwordSecret": ANY,
            "bfdProfile": TYPED_STR,
            "ebgpMultiHop": BOOL,
            "vrf": TYPED_STR,
        },
        ("myASN", "peerASN", "peerAddress"),
    ),
    "AddressPool": Struct(
        "AddressPool spec",
        {
            "protocol": TYPED_STR,
            "addresses": _NAMES,
            "autoAssign": BOOL,
            "avoidBuggyIPs": BOOL,
            "bgpAdvertisements": List(_LEGACY_ADV),
        },
        ("protocol", "addresses"),
    ),
}
_KEEP_META = ("name", "namespace", "labels", "annotations")
BFD_KEYS = {
    "receiveInterval": "receive-interval",
    "transmitInterval": "transmit-interval",
    "detectMultiplier": "detect-multiplier",
    "echoInterval": "echo-interval",
    "echoMode": "echo-mode",
    "passiveMode": "passive-mode",
    "minimumTtl": "minimum-ttl",
}
PEER_KEYS = {
    "myASN": "my-asn",
    "peerASN": "peer-asn",
    "peerAddress": "peer-address",
    "peerPort": "peer-port",
    "holdTime": "hold-time",
    "keepaliveTime": "keepalive-time",
    "routerID": "router-id",
    "sourceAddress": "source-address",
    "password": "password",
    "bfdProfile": "bfd-profile",
    "ebgpMultiHop": "ebgp-multihop",
}
ADV_KEYS = {
    "aggregationLength": "aggregation-length",
    "aggregationLengthV6": "aggregation-length-v6",
    "localPref": "localpref",
    "communities": "communities",
}


@dataclass(frozen=True)
class CrdObject:
    kind: str
    api_version: str
    meta: Obj
    """name, namespace, labels, annotations only."""
    spec: Obj
    path: Path
    """Where it is in the input (document index, or list index for a List)."""
    has_spec: bool = True
    """False when the input had no `spec` (v0.13 allows that for advertisements)."""

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.meta.get("labels", {}))

    def manifest(self) -> Obj:
        obj: Obj = {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta}
        if self.has_spec:
            obj["spec"] = self.spec
        return obj


# --- reading ------------------------------------------------------------------------------


def _objects(node: Node | None, path: Path, problems: ProblemLog, out: list[CrdObject]) -> None:
    if node is None:
        return
    if not isinstance(node, MappingNode):
        problems.add(
            path, f"expected a Kubernetes object (a mapping), got {describe(node)}", None, node
        )
        return
    kind = scalar_text(child(node, "kind"))
    api = scalar_text(child(node, "apiVersion")) or ""
    if kind == "List" and api == "v1":
        items = child(node, "items")
        if not isinstance(items, SequenceNode):
            problems.add(
                (*path, "items"), "a List needs items (a list of objects)", None, items or node
            )
            return
        for i, item in enumerate(items.value):
            _objects(item, (*path, "items", i), problems, out)
        return
    if kind not in VERSIONS:
        known = ", ".join(VERSIONS)
        problems.add(
            (*path, "kind"),
            f"expected a MetalLB custom resource ({known}), got {api or '?'} {kind or '?'}"
            + ("; a ConfigMap is converted with --from configmap" if kind == "ConfigMap" else ""),
            kind,
            node,
        )
        return
    group, _, version = api.partition("/")
    if group != GROUP or version not in VERSIONS[kind]:
        wanted = " or ".join(f"{GROUP}/{v}" for v in VERSIONS[kind])
        problems.add(
            (*path, "apiVersion"), f"{kind} needs apiVersion {wanted}, got {api!r}", api, node
        )
        return
    required = ("metadata", "spec") if SPECS[kind].required else ("metadata",)
    fields = Struct(
        kind,
        {
            "apiVersion": TYPED_STR,
            "kind": TYPED_STR,
            "metadata": _METADATA,
            "spec": SPECS[kind],
            "status": ANY,
        },
        required,
    )
    obj = read(node, fields, path, problems)
    name = (obj or {}).get("metadata", {}).get("name")
    if name is None:
        return  # reported
    if not name:
        problems.add(
            (*path, "metadata", "name"),
            "metadata.name must not be empty",
            name,
            child(child(node, "metadata"), "name"),
        )
        return
    meta = {k: obj["metadata"][k] for k in _KEEP_META if k in obj["metadata"]}
    annotations = {
        k: v
        for k, v in meta.get("annotations", {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out.append(CrdObject(kind, api, meta, obj.get("spec") or {}, path, "spec" in obj))


def read_objects(docs: list[Node | None]) -> list[CrdObject]:
    """The MetalLB objects of every document (a v1 List is opened); ConfigError listing every
    problem, or when there is none."""
    problems = ProblemLog()
    out: list[CrdObject] = []
    for i, doc in enumerate(docs):
        _objects(doc, (i,) if len(docs) > 1 else (), problems, out)
    problems.check()
    if not out:
        raise ConfigError([Problem("", "no MetalLB custom resources found")])
    return out


def originals_annotation(objects: list[Obj]) -> str:
    """The objects a config was converted from, as the ConfigMap annotation keeps them."""
    return json.dumps(objects, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def parse_originals(text: str | None) -> tuple[list[CrdObject] | None, str | None]:
    """The objects the annotation names, read as strictly as `--from crds` reads its input;
    (None, why) when it is absent or not such a list (a hand edit: it is then ignored)."""
    if not text:
        return None, None
    try:
        docs = load_documents(text)
        if len(docs) != 1 or not isinstance(docs[0], SequenceNode):
            return None, "it is not a JSON list of objects"
        return read_objects(list(docs[0].value)), None
    except ConfigError as exc:
        return None, str(exc.problems[0])


_SELECTOR_KEYS = (("matchLabels", "match-labels"), ("matchExpressions", "match-expressions"))
"""A label selector's keys in a CRD and in the v0.12 config (a peer's node-selectors)."""


def selector(sel: Mapping[str, Any], to_config: bool) -> Obj:
    """A label selector in the other spelling: CRD -> config (`to_config`) or config -> CRD;
    empty parts are left out, expressions keep `key`, `operator` and `values`."""
    out: Obj = {}
    for crd_key, config_key in _SELECTOR_KEYS:
        given, written = (crd_key, config_key) if to_config else (config_key, crd_key)
        value = sel.get(given)
        if value and given.endswith("abels"):
            out[written] = dict(value)
        elif value:
            out[written] = [
                {k: v for k, v in e.items() if k in ("key", "operator", "values")} for e in value
            ]
    return out
