"""`peers`, `bfd-profiles` and the rules of the BGP implementation (native or FRR) the config
is checked for (docs/config.md)."""

from __future__ import annotations

import re
from typing import Any

from metallb_py.config.addresses import AddressError, parse_address_entry, parse_ip
from metallb_py.config.check_selectors import SelectorChecks
from metallb_py.config.checks import objs, strings
from metallb_py.config.decode import Obj, Seq
from metallb_py.config.duration import DurationError, parse_go_duration, whole_seconds
from metallb_py.config.model import BfdProfile, BgpType, IPAddress, NodeSelector, Peer
from metallb_py.config.yamlnodes import format_path
from metallb_py.config.yamltree import shorten

NATIVE_BGP_SUPPORTS_IPV6 = True
"""v0.12's native rule "no IPv6 in bgp pools" is off: metallb-py's native speaker announces
IPv6 (docs/behaviour-differences.md, "BGP"). False restores v0.12's refusal."""

DEFAULT_HOLD_TIME = 90
DEFAULT_GRACEFUL_RESTART_TIME = 120
"""Seconds, when `graceful-restart: true` gives no `graceful-restart-time` (FRR's default)."""
MAX_GRACEFUL_RESTART_TIME = 4095
"""The Graceful Restart capability carries the restart time in 12 bits."""
MAX_BGP_HOLD_TIME = 65535
"""The OPEN message carries the hold time in 16 bits."""

BFD_RANGES: dict[str, tuple[int, int, str]] = {
    "receive-interval": (10, 60000, " ms"),
    "transmit-interval": (10, 60000, " ms"),
    "detect-multiplier": (2, 255, ""),
    "echo-interval": (10, 60000, " ms"),
    "minimum-ttl": (1, 254, ""),
}


class PeerChecks(SelectorChecks):
    # --- mode checks ---------------------------------------------------------------

    def mode(self, top: Obj) -> None:
        peers = objs(top, "peers")
        if self.bgp_type is BgpType.FRR:
            self._frr_mode(peers)
            return
        frr_only = (
            "the FRR BGP implementation (bgp type frr); the native speaker rejects the whole config"
        )
        for p in peers:
            if p.get("keepalive-time"):
                path, node = p.where("keepalive-time")
                self.error(path, node, f"keepalive-time needs {frr_only}", p.get("keepalive-time"))
        for profile in objs(top, "bfd-profiles"):
            if profile.get("echo-mode"):
                path, node = profile.where("echo-mode")
                self.error(
                    path,
                    node,
                    "echo-mode is not supported by the native speaker's BFD (control packets"
                    ' only; docs/bgp.md, "BFD"): remove it, or use the FRR BGP implementation'
                    " (bgp type frr); the native speaker rejects the whole config",
                    True,
                )
        if NATIVE_BGP_SUPPORTS_IPV6:
            return
        for pool in objs(top, "address-pools"):
            if pool.get("protocol") != "bgp":
                continue
            for j, node, text in strings(pool.get("addresses")):
                try:
                    entry = parse_address_entry(text)
                except AddressError:
                    continue  # reported by the pool checks
                if entry.version == 6:
                    self.error(
                        (*pool.path, "addresses", j),
                        node,
                        f"IPv6 address {shorten(text)} in a bgp pool: the native BGP speaker"
                        " does not support IPv6 (bgp type frr does)",
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
                for key, unset in (("router-id", "(unset)"), ("my-asn", 0)):
                    mine, theirs = p.get(key) or unset, first.get(key) or unset
                    if p.ok(key) and first.ok(key) and mine != theirs:
                        path, node = p.where(key)
                        self.error(
                            path,
                            node,
                            f"{key} {mine} differs from {first_path}'s {theirs}: in FRR mode all"
                            f" peers must use the same {key}",
                            p.get(key) or ("" if key == "router-id" else 0),
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

    # --- bfd-profiles --------------------------------------------------------------

    def bfd_profiles(self, top: Obj) -> tuple[list[BfdProfile], set[str]]:
        profiles: list[BfdProfile] = []
        names: set[str] = set()
        first: dict[str, str] = {}
        for p in objs(top, "bfd-profiles"):
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
                if not self.first_definition(first, p, name, "duplicate BFD profile name"):
                    good = False
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

    # --- peers ----------------------------------------------------------------------

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
        restart_time = self._graceful_restart_time(p)
        if restart_time is False:
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
                f"peer #{index + 1} references bfd-profile {shorten(bfd_profile)}, which is not"
                " defined in bfd-profiles",
                bfd_profile,
            )
            good = False
        if not good or address is None or hold is None or selectors is None:
            return None
        assert keepalive is not False and restart_time is not False
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
            graceful_restart_time=restart_time,
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
            self.error(path, node, f"invalid {key} {shorten(text)}: {exc}{hint}", text)
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
                f"invalid hold-time {shorten(text)}: must be 0 or >=3s (it counts as {seconds}s"
                " once fractions of a second are dropped)",
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
            self.error(
                path, node, f"invalid keepalive-time {shorten(text)}: must not be negative", text
            )
            return False
        if hold is not None and seconds > hold:
            why = (
                "hold-time 0 disables keepalives, so keepalive-time must be 0 or omitted"
                if hold == 0
                else f"it must not be longer than hold-time ({hold}s)"
            )
            self.error(
                path, node, f"invalid keepalive-time {shorten(text)} ({seconds}s): {why}", text
            )
            return False
        return seconds

    def _graceful_restart_time(self, p: Obj) -> int | bool | None:
        """Restart time in seconds with `graceful-restart: true`, None when off, False when
        invalid (reported). An extension to v0.12's format (docs/config.md)."""
        enabled = bool(p.get("graceful-restart"))
        text = p.get("graceful-restart-time")
        if not text:
            return DEFAULT_GRACEFUL_RESTART_TIME if enabled else None
        path, node = p.where("graceful-restart-time")
        if not enabled:
            self.error(
                path,
                node,
                f"graceful-restart-time {shorten(text)} needs graceful-restart: true",
                text,
            )
            return False
        seconds = self._duration(p, "graceful-restart-time")
        if seconds is None:
            return False
        if not 1 <= seconds <= MAX_GRACEFUL_RESTART_TIME:
            self.error(
                path,
                node,
                f"invalid graceful-restart-time {shorten(text)} ({seconds}s): must be in the"
                f" 1-{MAX_GRACEFUL_RESTART_TIME}s range (12 bits in the BGP capability)",
                text,
            )
            return False
        return seconds


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
        peer.graceful_restart_time,
    )
