"""Parse and validate a MetalLB v0.12 `config` text into a `Config` (spec section 1).

Stages, as upstream (spec 1.10): strict decode, mode checks (1.9), `bfd-profiles`, `peers`,
`bgp-communities`, `address-pools` (then duplicate names and overlaps). Upstream stops at the
first error; here every stage runs and every independent problem is reported, and a check is
skipped only when a value it depends on was already reported as broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from metallb_py.config.addresses import (
    AddressEntry,
    AddressError,
    parse_address_entry,
    parse_community,
    parse_ip,
)
from metallb_py.config.decode import (
    BOOL,
    INT64,
    STR,
    UINT16,
    UINT32,
    Decoder,
    List,
    Obj,
    Seq,
    StrMap,
    Struct,
    squash,
    suggest_key,
)
from metallb_py.config.duration import DurationError, parse_go_duration, whole_seconds
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.labels import label_key_errors, label_value_errors
from metallb_py.config.model import (
    AddressPool,
    BfdProfile,
    BgpAdvertisement,
    BgpType,
    Community,
    Config,
    IPAddress,
    IPNetwork,
    NodeSelector,
    Peer,
    Protocol,
    SelectorOperator,
    SelectorRequirement,
)
from metallb_py.config.yamlnodes import Path, ProblemLog, format_path
from metallb_py.config.yamltree import (
    Kind,
    YamlSyntaxError,
    classify,
    compose_one,
    describe,
    line_of,
)

NATIVE_BGP_SUPPORTS_IPV6 = True
"""Spec 1.9's native rule "no IPv6 in bgp pools" is off: metallb-py's native speaker announces
IPv6 (docs/behaviour-differences.md, "BGP"). False restores v0.12's refusal."""

MAX_CONFIG_BYTES = 1024 * 1024
"""Kubernetes refuses ConfigMaps over 1 MiB, so a longer config can never be deployed."""

DEFAULT_HOLD_TIME = 90
MAX_BGP_HOLD_TIME = 65535
"""The OPEN message carries the hold time in 16 bits."""

SELECTOR_REQUIREMENT = Struct(
    "match expression", {"key": STR, "operator": STR, "values": List(STR)}
)
NODE_SELECTOR = Struct(
    "node selector",
    {"match-labels": StrMap(), "match-expressions": List(SELECTOR_REQUIREMENT)},
)
PEER = Struct(
    "peer",
    {
        "my-asn": UINT32,
        "peer-asn": UINT32,
        "peer-address": STR,
        "source-address": STR,
        "peer-port": UINT16,
        "hold-time": STR,
        "keepalive-time": STR,
        "router-id": STR,
        "node-selectors": List(NODE_SELECTOR),
        "password": STR,
        "bfd-profile": STR,
        "ebgp-multihop": BOOL,
    },
)
BGP_ADVERTISEMENT = Struct(
    "BGP advertisement",
    {
        "aggregation-length": INT64,
        "aggregation-length-v6": INT64,
        "localpref": UINT32,
        "communities": List(STR),
    },
)
ADDRESS_POOL = Struct(
    "address pool",
    {
        "protocol": STR,
        "name": STR,
        "addresses": List(STR),
        "avoid-buggy-ips": BOOL,
        "auto-assign": BOOL,
        "bgp-advertisements": List(BGP_ADVERTISEMENT),
    },
)
BFD_PROFILE = Struct(
    "BFD profile",
    {
        "name": STR,
        "receive-interval": UINT32,
        "transmit-interval": UINT32,
        "detect-multiplier": UINT32,
        "echo-interval": UINT32,
        "echo-mode": BOOL,
        "passive-mode": BOOL,
        "minimum-ttl": UINT32,
    },
)
_TOP_KEYS_SQUASHED = {"peers", "bgpcommunities", "addresspools", "bfdprofiles"}


def _wrapper_hint(value: Node, spec: Struct) -> str:
    """Explain configs nested under a wrapper key (Helm `configInline`, Kontena add-on)."""
    if not isinstance(value, MappingNode):
        return ""
    inner = [
        str(k.value)
        for k, _ in value.value
        if isinstance(k, ScalarNode) and squash(str(k.value)) in _TOP_KEYS_SQUASHED
    ]
    if not inner:
        return ""
    hint = (
        f"; it contains {', '.join(inner)}: the MetalLB config must start at the top level"
        " (the ConfigMap's data.config), not nested under another key"
    )
    renamed = [
        f"{key!r} is {meant!r}"
        for key in inner
        for meant in [suggest_key(key, list(spec.fields))[0]]
        if meant is not None and meant != key
    ]
    if renamed:
        hint += "; keys are written in lower-case kebab-case there: " + ", ".join(renamed)
    return hint


CONFIG = Struct(
    "config",
    {
        "peers": List(PEER),
        "bgp-communities": StrMap(),
        "address-pools": List(ADDRESS_POOL),
        "bfd-profiles": List(BFD_PROFILE),
    },
    hint=_wrapper_hint,
)

BFD_RANGES: dict[str, tuple[int, int, str]] = {
    "receive-interval": (10, 60000, " ms"),
    "transmit-interval": (10, 60000, " ms"),
    "detect-multiplier": (2, 255, ""),
    "echo-interval": (10, 60000, " ms"),
    "minimum-ttl": (1, 254, ""),
}

_OPERATORS = {op.value: op for op in SelectorOperator}


def parse_config(text: str, bgp_type: BgpType = BgpType.NATIVE) -> Config:
    """The validated config, or ConfigError listing every problem. "" is the empty config."""
    config, _ = parse_config_with_warnings(text, bgp_type)
    return config


def parse_config_with_warnings(
    text: str, bgp_type: BgpType = BgpType.NATIVE
) -> tuple[Config, tuple[Problem, ...]]:
    """Like `parse_config`, plus warnings: accepted but probably not what the user meant."""
    bgp_type = BgpType(bgp_type)
    check_size(text, MAX_CONFIG_BYTES, "the config")
    try:
        root, _ = compose_one(text)
    except YamlSyntaxError as exc:
        problem = Problem("", f"could not parse config: {exc.message}", None, exc.line)
        raise ConfigError([problem]) from None
    if root is None or (isinstance(root, ScalarNode) and classify(root).kind is Kind.NULL):
        return Config(), ()
    if not isinstance(root, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    "the config must be a YAML mapping with keys such as address-pools and"
                    f" peers, not {describe(root)}",
                    root.value if isinstance(root, ScalarNode) else None,
                    line_of(root),
                )
            ]
        )
    manifest = _manifest_problem(root)
    if manifest is not None:
        raise ConfigError([manifest])
    problems = ProblemLog()
    checker = _Checker(problems, bgp_type)
    _, top = Decoder(problems).decode(root, CONFIG, ())
    assert isinstance(top, Obj)
    checker.mode(top)
    profiles, profile_names = checker.bfd_profiles(top)
    peers = checker.peers(top, profile_names)
    aliases, alias_names = checker.communities(top)
    pools = checker.pools(top, aliases, alias_names)
    problems.check()
    config = Config(
        peers=tuple(peers),
        bgp_communities=MappingProxyType(dict(aliases)),
        pools=tuple(pools),
        bfd_profiles=tuple(profiles),
    )
    return config, tuple(checker.warnings)


def check_size(text: str, limit: int, what: str) -> None:
    """Refuse over-long or un-encodable text before any parsing work is done."""
    if len(text) > limit:
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ConfigError(
                [Problem("", f"{what} is not valid Unicode text ({exc.reason})", None, None)]
            ) from None
    if size > limit:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"{what} is at least {size} bytes; a ConfigMap holds at most 1 MiB"
                    f" ({limit} bytes), so this cannot be a deployable MetalLB config",
                )
            ]
        )


def _manifest_problem(root: MappingNode) -> Problem | None:
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == "kind":
            kind = value.value if isinstance(value, ScalarNode) else "?"
            hint = (
                "give the manifest to `metallb-py config check` (or load_config_document),"
                " which reads its data.config"
                if kind == "ConfigMap"
                else "metallb-py implements MetalLB v0.12, configured by the `config` key of a"
                " ConfigMap; custom resources such as IPAddressPool or BGPPeer are v0.13+"
            )
            return Problem(
                "kind",
                f"this is a Kubernetes manifest (kind: {kind}), not a MetalLB config: {hint}",
                kind,
                line_of(key),
            )
    return None


def _objs(parent: Obj, key: str) -> list[Obj]:
    seq = parent.get(key)
    if not isinstance(seq, Seq):
        return []
    return [value for _, _, value in seq.good()]


def _strings(seq: Any) -> list[tuple[int, Node, str]]:
    return list(seq.good()) if isinstance(seq, Seq) else []


@dataclass(frozen=True)
class _Cidr:
    """One CIDR of one address entry, for the overlap sweep."""

    order: int
    network: IPNetwork
    path: Path
    node: Node
    pool: str
    entry: str


class _Checker:
    """Semantic checks over the decoded tree; collects problems and warnings."""

    def __init__(self, problems: ProblemLog, bgp_type: BgpType) -> None:
        self.problems = problems
        self.warnings: list[Problem] = []
        self.bgp_type = bgp_type

    def error(self, path: Path, node: Node | None, reason: str, value: Any = None) -> None:
        self.problems.add(path, reason, value, node)

    def warn(self, path: Path, node: Node | None, reason: str, value: Any = None) -> None:
        self.warnings.append(Problem(format_path(path), reason, value, line_of(node)))

    # --- 1.9 mode checks ---------------------------------------------------------------

    def mode(self, top: Obj) -> None:
        peers = _objs(top, "peers")
        if self.bgp_type is BgpType.FRR:
            self._frr_mode(peers)
            return
        frr_only = (
            "the FRR BGP implementation (bgp type frr); the native speaker rejects the whole config"
        )
        for p in peers:
            for key in ("bfd-profile", "keepalive-time"):
                if p.get(key):
                    path, node = p.where(key)
                    self.error(path, node, f"{key} needs {frr_only}", p.get(key))
        profiles = top.get("bfd-profiles")
        if isinstance(profiles, Seq) and profiles.items:
            self.error(("bfd-profiles",), profiles.node, f"bfd-profiles need {frr_only}")
        if NATIVE_BGP_SUPPORTS_IPV6:
            return
        for pool in _objs(top, "address-pools"):
            if pool.get("protocol") != "bgp":
                continue
            for j, node, text in _strings(pool.get("addresses")):
                try:
                    entry = parse_address_entry(text)
                except AddressError:
                    continue  # reported by the pool checks
                if entry.version == 6:
                    self.error(
                        (*pool.path, "addresses", j),
                        node,
                        f"IPv6 address {text!r} in a bgp pool: the native BGP speaker does not"
                        " support IPv6 (bgp type frr does)",
                        text,
                    )

    def _frr_mode(self, peers: list[Obj]) -> None:
        if len(peers) < 2:
            return
        first = peers[0]
        first_path = format_path(first.path)
        seen_addresses: dict[str, str] = {}
        for p in peers:
            if p is not first:
                if p.ok("router-id") and first.ok("router-id"):
                    mine, theirs = p.get("router-id") or "", first.get("router-id") or ""
                    if mine != theirs:
                        path, node = p.where("router-id")
                        self.error(
                            path,
                            node,
                            f"router-id {mine or '(unset)'!s} differs from {first_path}'s"
                            f" {theirs or '(unset)'}: in FRR mode all peers must use the same"
                            " router-id",
                            mine,
                        )
                if p.ok("my-asn") and first.ok("my-asn"):
                    mine_asn, their_asn = p.get("my-asn") or 0, first.get("my-asn") or 0
                    if mine_asn != their_asn:
                        path, node = p.where("my-asn")
                        self.error(
                            path,
                            node,
                            f"my-asn {mine_asn} differs from {first_path}'s {their_asn}: in FRR"
                            " mode all peers must use the same my-asn",
                            mine_asn,
                        )
            address = p.get("peer-address") or ""
            if p.ok("peer-address"):
                if address in seen_addresses:
                    path, node = p.where("peer-address")
                    self.error(
                        path,
                        node,
                        f"peer-address {address} is already used by {seen_addresses[address]}:"
                        " FRR mode does not support two peers with the same address",
                        address,
                    )
                else:
                    seen_addresses[address] = format_path(p.path)

    # --- 1.8 bfd-profiles --------------------------------------------------------------

    def bfd_profiles(self, top: Obj) -> tuple[list[BfdProfile], set[str]]:
        profiles: list[BfdProfile] = []
        names: set[str] = set()
        first: dict[str, str] = {}
        for p in _objs(top, "bfd-profiles"):
            good = not p.broken and not p.misspelled
            name = p.get("name") or ""
            if not name:
                if p.ok("name"):
                    self.error((*p.path, "name"), p.node, "missing BFD profile name")
                good = False
            for key, (lo, hi, unit) in BFD_RANGES.items():
                value = p.get(key)
                if value is not None and not lo <= value <= hi:
                    path, node = p.where(key)
                    self.error(
                        path,
                        node,
                        f"invalid {key} {value}: must be in the {lo}-{hi}{unit} range",
                        value,
                    )
                    good = False
            if name:
                names.add(name)
                if name in first:
                    path, node = p.where("name")
                    self.error(
                        path,
                        node,
                        f"duplicate BFD profile name {name!r} (first: {first[name]})",
                        name,
                    )
                    good = False
                else:
                    first[name] = format_path(p.path)
            if good:
                profiles.append(
                    BfdProfile(
                        name=name,
                        receive_interval=p.get("receive-interval"),
                        transmit_interval=p.get("transmit-interval"),
                        detect_multiplier=p.get("detect-multiplier"),
                        echo_interval=p.get("echo-interval"),
                        echo_mode=bool(p.get("echo-mode")),
                        passive_mode=bool(p.get("passive-mode")),
                        minimum_ttl=p.get("minimum-ttl"),
                    )
                )
        return profiles, names

    # --- 1.3 peers ----------------------------------------------------------------------

    def peers(self, top: Obj, profile_names: set[str]) -> list[Peer]:
        out: list[Peer] = []
        first: dict[tuple[Any, ...], int] = {}
        seq = top.get("peers")
        if not isinstance(seq, Seq):
            return out
        for i, _, p in seq.good():
            peer = self._peer(p, i, profile_names)
            if peer is None:
                continue
            identity = _peer_identity(peer)
            if identity in first:
                j = first[identity]
                self.error(
                    p.path,
                    p.node,
                    f"peer #{i + 1} already exists: identical in every field to peer #{j + 1}"
                    f" (peers[{j}])",
                )
                continue
            first[identity] = i
            out.append(peer)
        return out

    def _peer(self, p: Obj, index: int, profile_names: set[str]) -> Peer | None:
        good = not p.broken and not p.misspelled
        my_asn = p.get("my-asn") or 0
        peer_asn = p.get("peer-asn") or 0
        for key, value, what in (("my-asn", my_asn, "local"), ("peer-asn", peer_asn, "peer")):
            if value == 0:
                good = False
                if p.ok(key):
                    path, node = p.where(key)
                    self.error(path, node, f"missing {what} ASN: {key} is required and not 0")
        multihop = bool(p.get("ebgp-multihop"))
        if multihop and my_asn and my_asn == peer_asn:
            path, node = p.where("ebgp-multihop")
            self.error(
                path,
                node,
                "invalid ebgp-multihop parameter set for an iBGP peer (my-asn equals peer-asn)",
                True,
            )
            good = False
        address = self._ip(p, "peer-address", "peer IP", required=True)
        router_id = self._ip(p, "router-id", "router ID")
        source = self._ip(p, "source-address", "source IP")
        if router_id is None and p.get("router-id"):
            good = False
        if source is None and p.get("source-address"):
            good = False
        if router_id is not None and router_id.version == 6 and self.bgp_type is BgpType.NATIVE:
            path, node = p.where("router-id")
            self.warn(
                path,
                node,
                "the native BGP speaker only uses IPv4 router IDs; this IPv6 router-id is"
                " ignored and one is derived from the node's address",
                str(router_id),
            )
        hold = self._hold_time(p)
        keepalive = self._keepalive_time(p, hold)
        if hold is None or keepalive is False:
            good = False
        selectors = self._node_selectors(p)
        if selectors is None:
            good = False
        bfd_profile = p.get("bfd-profile") or ""
        if bfd_profile and bfd_profile not in profile_names:
            path, node = p.where("bfd-profile")
            self.error(
                path,
                node,
                f"peer #{index + 1} references bfd-profile {bfd_profile!r}, which is not"
                " defined in bfd-profiles",
                bfd_profile,
            )
            good = False
        if not good or address is None or hold is None or selectors is None:
            return None
        assert keepalive is not False
        return Peer(
            my_asn=my_asn,
            peer_asn=peer_asn,
            address=address,
            port=p.get("peer-port") or 179,
            hold_time=hold,
            keepalive_time=keepalive,
            router_id=router_id,
            source_address=source,
            password=p.get("password") or "",
            bfd_profile=bfd_profile,
            ebgp_multihop=multihop,
            node_selectors=selectors,
        )

    def _ip(self, p: Obj, key: str, what: str, required: bool = False) -> IPAddress | None:
        text = p.get(key) or ""
        path, node = p.where(key)
        if not text:
            if required and p.ok(key):
                self.error(path, node, f"missing {key}: the {what} is required")
            return None
        try:
            return parse_ip(text)
        except AddressError as exc:
            self.error(path, node, f"invalid {what}: {exc}", text)
            return None

    def _duration(self, p: Obj, key: str) -> int | None:
        """Whole seconds of a Go duration field, None when absent or invalid (reported)."""
        text = p.get(key) or ""
        if not text:
            return None
        try:
            nanoseconds = parse_go_duration(text)
        except DurationError as exc:
            hint = ""
            if re.fullmatch(r"[-+]?[0-9]+(\.[0-9]*)?", text):
                hint = f" (a duration needs a unit: write {text}s for seconds)"
            path, node = p.where(key)
            self.error(path, node, f"invalid {key} {text!r}: {exc}{hint}", text)
            return None
        return whole_seconds(nanoseconds)

    def _hold_time(self, p: Obj) -> int | None:
        if not p.get("hold-time"):
            return DEFAULT_HOLD_TIME
        seconds = self._duration(p, "hold-time")
        if seconds is None:
            return None
        path, node = p.where("hold-time")
        text = p.get("hold-time")
        if seconds != 0 and seconds < 3:
            self.error(
                path,
                node,
                f"invalid hold-time {text!r}: must be 0 or >=3s (it counts as {seconds}s once"
                " fractions of a second are dropped)",
                text,
            )
            return None
        if seconds > MAX_BGP_HOLD_TIME:
            self.warn(
                path,
                node,
                f"hold-time {seconds}s is more than BGP can carry ({MAX_BGP_HOLD_TIME}s)",
                text,
            )
        return seconds

    def _keepalive_time(self, p: Obj, hold: int | None) -> int | bool | None:
        """Explicit keepalive seconds, None when not given, False when invalid (reported)."""
        if not p.get("keepalive-time"):
            return None
        seconds = self._duration(p, "keepalive-time")
        if seconds is None:
            return False
        text = p.get("keepalive-time")
        path, node = p.where("keepalive-time")
        if seconds < 0:
            self.error(path, node, f"invalid keepalive-time {text!r}: must not be negative", text)
            return False
        if hold is not None and seconds > hold:
            why = (
                "hold-time 0 disables keepalives, so keepalive-time must be 0 or omitted"
                if hold == 0
                else f"it must not be longer than hold-time ({hold}s)"
            )
            self.error(path, node, f"invalid keepalive-time {text!r} ({seconds}s): {why}", text)
            return False
        return seconds

    # --- 1.4 node-selectors --------------------------------------------------------------

    def _node_selectors(self, p: Obj) -> tuple[NodeSelector, ...] | None:
        seq = p.get("node-selectors")
        if not isinstance(seq, Seq):
            return ()
        good = all(item.value is not None for item in seq.items)
        selectors: list[NodeSelector] = []
        for _, _, sel in seq.good():
            selector = self._node_selector(sel)
            if selector is None:
                good = False
            else:
                selectors.append(selector)
        return tuple(selectors) if good else None

    def _node_selector(self, sel: Obj) -> NodeSelector | None:
        good = not sel.broken and not sel.misspelled
        labels: list[tuple[str, str]] = []
        for pair in sel.get("match-labels") or []:
            path = (*sel.path, "match-labels", pair.key)
            key_errors = label_key_errors(pair.key)
            if key_errors:
                self.error(
                    path,
                    pair.key_node,
                    f"invalid label key {pair.key!r}: " + "; ".join(key_errors),
                    pair.key,
                )
                good = False
            if pair.value is None:
                good = False
                continue
            value_errors = label_value_errors(pair.value)
            if value_errors:
                self.error(
                    path,
                    pair.value_node,
                    f"invalid label value {pair.value!r}: " + "; ".join(value_errors),
                    pair.value,
                )
                good = False
            labels.append((pair.key, pair.value))
        expressions: list[SelectorRequirement] = []
        seq = sel.get("match-expressions")
        if isinstance(seq, Seq):
            if any(item.value is None for item in seq.items):
                good = False
            for _, _, expr in seq.good():
                requirement = self._requirement(expr)
                if requirement is None:
                    good = False
                else:
                    expressions.append(requirement)
        if not good:
            return None
        return NodeSelector(
            match_labels=tuple(sorted(labels)),
            match_expressions=tuple(
                sorted(expressions, key=lambda r: (r.key, r.operator.value, r.values))
            ),
        )

    def _requirement(self, expr: Obj) -> SelectorRequirement | None:
        good = not expr.broken and not expr.misspelled
        key = expr.get("key") or ""
        path, node = expr.where("key")
        if not key:
            if expr.ok("key"):
                self.error(path, node, "a match expression needs a key (a label name)")
            good = False
        else:
            key_errors = label_key_errors(key)
            if key_errors:
                self.error(path, node, f"invalid label key {key!r}: " + "; ".join(key_errors), key)
                good = False
        operator_text = expr.get("operator") or ""
        operator = _OPERATORS.get(operator_text)
        path, node = expr.where("operator")
        valid = ", ".join(_OPERATORS)
        if operator is None:
            good = False
            if not operator_text:
                if expr.ok("operator"):
                    self.error(path, node, f"a match expression needs an operator ({valid})")
            else:
                close = [op for op in _OPERATORS if op.lower() == operator_text.lower()]
                hint = f"; operators are case-sensitive: write {close[0]!r}" if close else ""
                self.error(
                    path,
                    node,
                    f"{operator_text!r} is not a valid selector operator ({valid}){hint}",
                    operator_text,
                )
        values: list[str] = []
        seq = expr.get("values")
        for j, value_node, value in _strings(seq):
            value_errors = label_value_errors(value)
            if value_errors:
                self.error(
                    (*expr.path, "values", j),
                    value_node,
                    f"invalid label value {value!r}: " + "; ".join(value_errors),
                    value,
                )
                good = False
            values.append(value)
        if isinstance(seq, Seq) and any(item.value is None for item in seq.items):
            good = False
        if operator is not None and expr.ok("values"):
            path, node = expr.where("values")
            needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
            if needs_values and not values:
                self.error(path, node, f"operator {operator.value} needs a non-empty values list")
                good = False
            if not needs_values and values:
                self.error(
                    path, node, f"operator {operator.value} takes no values (values must be empty)"
                )
                good = False
        if not good or operator is None:
            return None
        return SelectorRequirement(key, operator, tuple(sorted(set(values))))

    # --- 1.5 bgp-communities -------------------------------------------------------------

    def communities(self, top: Obj) -> tuple[dict[str, Community], set[str]]:
        aliases: dict[str, Community] = {}
        names: set[str] = set()
        for pair in top.get("bgp-communities") or []:
            names.add(pair.key)
            if pair.value is None:
                continue
            try:
                aliases[pair.key] = parse_community(pair.value)
            except AddressError as exc:
                self.error(
                    ("bgp-communities", pair.key),
                    pair.value_node,
                    f"invalid community for alias {pair.key!r}: {exc}",
                    pair.value,
                )
        return aliases, names

    # --- 1.6 address-pools ---------------------------------------------------------------

    def pools(
        self, top: Obj, aliases: dict[str, Community], alias_names: set[str]
    ) -> list[AddressPool]:
        out: list[AddressPool] = []
        first: dict[str, str] = {}
        cidrs: list[_Cidr] = []
        for p in _objs(top, "address-pools"):
            pool = self._pool(p, aliases, alias_names, cidrs)
            name = p.get("name") or ""
            if name:
                if name in first:
                    path, node = p.where("name")
                    self.error(
                        path,
                        node,
                        f"duplicate definition of pool {name!r} (first: {first[name]})",
                        name,
                    )
                    continue
                first[name] = format_path(p.path)
            if pool is not None:
                out.append(pool)
        self._overlaps(cidrs)
        return out

    def _pool(
        self,
        p: Obj,
        aliases: dict[str, Community],
        alias_names: set[str],
        cidrs: list[_Cidr],
    ) -> AddressPool | None:
        good = not p.broken and not p.misspelled
        name = p.get("name") or ""
        if not name:
            good = False
            if p.ok("name"):
                self.error((*p.path, "name"), p.node, "missing pool name")
        entries: list[tuple[int, str, AddressEntry]] = []
        seq = p.get("addresses")
        if not isinstance(seq, Seq) or not seq.items:
            good = False
            if p.ok("addresses"):
                path, node = p.where("addresses")
                self.error(path, node, "pool has no addresses (prefixes) defined")
        else:
            for j, node, text in seq.good():
                path = (*p.path, "addresses", j)
                try:
                    entry = parse_address_entry(text)
                except AddressError as exc:
                    self.error(path, node, f"invalid address {text!r}: {exc}", text)
                    good = False
                    continue
                entries.append((j, text, entry))
                if entry.host_bits_set:
                    self.warn(
                        path,
                        node,
                        f"{text} has host bits set; MetalLB uses the whole network"
                        f" {entry.cidrs[0]}",
                        text,
                    )
                for network in entry.cidrs:
                    cidrs.append(_Cidr(len(cidrs), network, path, node, name, text))
        protocol = p.get("protocol") or ""
        path, node = p.where("protocol")
        if not protocol:
            good = False
            if p.ok("protocol"):
                self.error(path, node, "address pool is missing the protocol field (layer2 or bgp)")
        elif protocol not in (Protocol.LAYER2.value, Protocol.BGP.value):
            good = False
            hint = (
                f"; protocol names are lower-case: write {protocol.lower()!r}"
                if protocol.lower() in (Protocol.LAYER2.value, Protocol.BGP.value)
                else ""
            )
            self.error(
                path, node, f"unknown protocol {protocol!r}: must be layer2 or bgp{hint}", protocol
            )
        ads_seq = p.get("bgp-advertisements")
        advertisements: tuple[BgpAdvertisement, ...] | None = ()
        if protocol == Protocol.LAYER2.value and isinstance(ads_seq, Seq) and ads_seq.items:
            path, node = p.where("bgp-advertisements")
            self.error(
                path,
                node,
                "bgp-advertisements are only allowed in a bgp pool, not in a layer2 pool",
            )
            good = False
        elif protocol == Protocol.BGP.value:
            advertisements = self._advertisements(p, ads_seq, entries, aliases, alias_names)
        if not good or advertisements is None:
            return None
        auto_assign = p.get("auto-assign")
        return AddressPool(
            name=name,
            protocol=Protocol(protocol),
            cidrs=tuple(c for _, _, entry in entries for c in entry.cidrs),
            addresses=tuple(text for _, text, _ in entries),
            avoid_buggy_ips=bool(p.get("avoid-buggy-ips")),
            auto_assign=True if auto_assign is None else auto_assign,
            bgp_advertisements=advertisements,
        )

    def _overlaps(self, cidrs: list[_Cidr]) -> None:
        """Report every entry with a CIDR that overlaps one defined earlier (any pool).

        CIDR blocks are nested or disjoint, so after sorting by (start, length) each block's
        ancestors are on a stack and its descendants follow it contiguously: O(n log n), where
        upstream compares every pair.
        """
        # Per item: earliest (order) overlapping block among ancestors and descendants.
        best: list[_Cidr | None] = [None] * len(cidrs)

        def earlier(a: _Cidr | None, b: _Cidr | None) -> _Cidr | None:
            if a is None:
                return b
            if b is None:
                return a
            return a if a.order < b.order else b

        ordered = sorted(
            cidrs,
            key=lambda c: (
                c.network.version,
                int(c.network.network_address),
                c.network.prefixlen,
                c.order,
            ),
        )
        # stack: [cidr, earliest of its ancestors and itself, earliest below it]
        stack: list[list[Any]] = []

        def pop() -> None:
            cidr, _, below = stack.pop()
            best[cidr.order] = earlier(best[cidr.order], below)
            if stack:
                stack[-1][2] = earlier(stack[-1][2], earlier(cidr, below))

        for c in ordered:
            while stack and not _contains(stack[-1][0].network, c.network):
                pop()
            ancestors = stack[-1][1] if stack else None
            best[c.order] = ancestors
            stack.append([c, earlier(ancestors, c), None])
        while stack:
            pop()
        reported: set[Path] = set()
        for c in cidrs:
            other = best[c.order]
            if other is None or other.order > c.order or c.path in reported:
                continue
            reported.add(c.path)
            where = (
                f"pool {other.pool!r}, {format_path(other.path)}"
                if other.pool
                else format_path(other.path)
            )
            what = (
                f"CIDR {c.network}"
                if c.network.compressed == c.entry
                else f"CIDR {c.network} of {c.entry}"
            )
            self.error(
                c.path,
                c.node,
                f"{what} overlaps with already defined CIDR {other.network} ({where})",
                c.entry,
            )

    # --- 1.7 bgp-advertisements ----------------------------------------------------------

    def _advertisements(
        self,
        pool: Obj,
        seq: Any,
        entries: list[tuple[int, str, AddressEntry]],
        aliases: dict[str, Community],
        alias_names: set[str],
    ) -> tuple[BgpAdvertisement, ...] | None:
        if not isinstance(seq, Seq) or not seq.items:
            return (BgpAdvertisement(),)
        good = all(item.value is not None for item in seq.items)
        first: dict[tuple[Any, ...], int] = {}
        out: list[BgpAdvertisement] = []
        for k, _, ad in seq.good():
            ad_good = not ad.broken and not ad.misspelled
            community_seq = ad.get("communities")
            written = (
                ad.get("aggregation-length"),
                ad.get("aggregation-length-v6"),
                ad.get("localpref"),
                None
                if community_seq is None
                else tuple(text for _, _, text in _strings(community_seq)),
            )
            if ad_good:
                if written in first:
                    self.error(
                        ad.path,
                        ad.node,
                        "duplicate definition of bgp-advertisements: identical to"
                        f" bgp-advertisements[{first[written]}]",
                    )
                    ad_good = False
                else:
                    first[written] = k
            length4 = self._aggregation(ad, "aggregation-length", 32, 4, entries)
            length6 = self._aggregation(ad, "aggregation-length-v6", 128, 6, entries)
            communities = self._ad_communities(ad, aliases, alias_names)
            if length4 is None or length6 is None or communities is None:
                ad_good = False
            if ad_good:
                assert length4 is not None and length6 is not None and communities is not None
                out.append(
                    BgpAdvertisement(
                        aggregation_length=length4,
                        aggregation_length_v6=length6,
                        localpref=ad.get("localpref") or 0,
                        communities=tuple(sorted(set(communities))),
                        community_strings=tuple(text for _, _, text in _strings(community_seq)),
                    )
                )
            good = good and ad_good
        return tuple(out) if good else None

    def _aggregation(
        self,
        ad: Obj,
        key: str,
        bits: int,
        version: int,
        entries: list[tuple[int, str, AddressEntry]],
    ) -> int | None:
        if not ad.ok(key):
            return None
        given = ad.get(key)
        length = bits if given is None else given
        path, node = ad.where(key)
        if length > bits:
            family = "IPv4" if version == 4 else "IPv6"
            self.error(
                path, node, f"invalid {key} {length}: must be at most {bits} for {family}", length
            )
            return None
        offending = [
            (entry.widest_prefix, j, text)
            for j, text, entry in entries
            if entry.version == version and length < entry.widest_prefix
        ]
        if not offending:
            return length
        prefix, j, text = max(offending, key=lambda o: (o[0], -o[1]))
        more = f" (and {len(offending) - 1} more address entries)" if len(offending) > 1 else ""
        self.error(
            path,
            node,
            f"invalid {key} {length}: address {text!r} (addresses[{j}]) is at most a /{prefix}"
            f" block, more specific than the aggregation length; a /{length} aggregate would"
            f" announce addresses outside it{more}",
            length,
        )
        return None

    def _ad_communities(
        self, ad: Obj, aliases: dict[str, Community], alias_names: set[str]
    ) -> list[Community] | None:
        seq = ad.get("communities")
        good = ad.ok("communities")
        values: list[Community] = []
        first: dict[str, int] = {}
        for j, node, text in _strings(seq):
            path = (*ad.path, "communities", j)
            if text in first:
                self.error(
                    path,
                    node,
                    f"duplicate definition of community {text!r} in this advertisement (also"
                    f" communities[{first[text]}])",
                    text,
                )
                good = False
                continue
            first[text] = j
            if text in aliases:
                values.append(aliases[text])
            elif text in alias_names:
                good = False  # the alias itself is broken and reported
            else:
                try:
                    values.append(parse_community(text))
                except AddressError as exc:
                    self.error(
                        path,
                        node,
                        f"invalid community {text!r} in BGP advertisement: not an alias from"
                        f" bgp-communities, and {exc}",
                        text,
                    )
                    good = False
        return values if good else None


def _contains(outer: IPNetwork, inner: IPNetwork) -> bool:
    return (
        outer.version == inner.version
        and outer.prefixlen <= inner.prefixlen
        and inner.network_address in outer
    )


def _peer_identity(peer: Peer) -> tuple[Any, ...]:
    """What upstream's DeepEqual compares: parsed values, with defaults filled in."""
    selectors = peer.node_selectors or (NodeSelector(),)  # none given == one "select all"
    return (
        peer.my_asn,
        peer.peer_asn,
        peer.address,
        peer.port,
        peer.hold_time,
        peer.effective_keepalive,
        peer.router_id,
        peer.source_address,
        peer.password,
        peer.bfd_profile,
        peer.ebgp_multihop,
        selectors,
    )
