"""`address-pools` (with their overlaps), `bgp-advertisements` and `bgp-communities`
(docs/config.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node

from metallb_py.config.addresses import (
    AddressEntry,
    AddressError,
    parse_address_entry,
    parse_community,
)
from metallb_py.config.checks import Checks, objs, strings
from metallb_py.config.decode import Obj, Seq
from metallb_py.config.model import (
    AddressPool,
    BgpAdvertisement,
    Community,
    IPNetwork,
    Protocol,
)
from metallb_py.config.yamlnodes import Path, format_path
from metallb_py.config.yamltree import shorten


@dataclass(frozen=True)
class _Cidr:
    """One CIDR of one address entry, for the overlap sweep."""

    order: int
    network: IPNetwork
    path: Path
    node: Node
    pool: str
    entry: str


class PoolChecks(Checks):
    # --- bgp-communities -------------------------------------------------------------

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
                    f"invalid community for alias {shorten(pair.key)}: {exc}",
                    pair.value,
                )
        return aliases, names

    # --- address-pools ---------------------------------------------------------------

    def pools(
        self, top: Obj, aliases: dict[str, Community], alias_names: set[str]
    ) -> list[AddressPool]:
        out: list[AddressPool] = []
        first: dict[str, str] = {}
        cidrs: list[_Cidr] = []
        for p in objs(top, "address-pools"):
            pool = self._pool(p, aliases, alias_names, cidrs)
            name = p.get("name") or ""
            if name and not self.first_definition(first, p, name, "duplicate definition of pool"):
                continue
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
                    self.error(path, node, f"invalid address {shorten(text)}: {exc}", text)
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
                path,
                node,
                f"unknown protocol {shorten(protocol)}: must be layer2 or bgp{hint}",
                protocol,
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
                f"pool {shorten(other.pool)}, {format_path(other.path)}"
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

    # --- bgp-advertisements ----------------------------------------------------------

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
                else tuple(text for _, _, text in strings(community_seq)),
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
                        community_strings=tuple(text for _, _, text in strings(community_seq)),
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
            f"invalid {key} {length}: address {shorten(text)} (addresses[{j}]) is at most a"
            f" /{prefix} block, more specific than the aggregation length; a /{length}"
            f" aggregate would announce addresses outside it{more}",
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
        for j, node, text in strings(seq):
            path = (*ad.path, "communities", j)
            if text in first:
                self.error(
                    path,
                    node,
                    f"duplicate definition of community {shorten(text)} in this advertisement (also"
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
                        f"invalid community {shorten(text)} in BGP advertisement: not an alias from"
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
