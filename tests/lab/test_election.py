"""The layer2 election, pinned by vectors worked out by hand.

The lab and the tests know who must announce a Service IP from `layout.election_ranking`, the
lab's own statement of MetalLB's rule (docs/lab.md, "Who must answer"), not from the product's
`election_order`. The vectors below were computed once with `hashlib` alone (the digest prefixes
are in the table, so anyone can check them again): both the lab's statement and the product's
implementation must give these orders, so a change of either rule fails here.
"""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from metallb_lab.lab.layout import election_ranking
from metallb_py.speaker.decision import election_order

# (candidate nodes, first ingress IP, expected order, first 4 bytes of SHA-256("NODE#IP") of
# each node in that order)
VECTORS = [
    (("n1", "n2", "n3"), "192.0.2.100", ["n3", "n2", "n1"], ["20f4840f", "8507c41b", "dbb18bb4"]),
    (("n1", "n2", "n3"), "192.0.2.101", ["n1", "n3", "n2"], ["1dd71f09", "431e68e9", "4ddd59eb"]),
    (("n1", "n2", "n3"), "2001:db8::100", ["n3", "n2", "n1"], ["351926fb", "cce7c986", "cf9ce587"]),
    (
        ("node-a", "node-b", "node-c", "node-d", "node-e"),
        "2001:db8::105",
        ["node-c", "node-e", "node-d", "node-a", "node-b"],
        ["20c5a81d", "210c5891", "7acdee95", "96ddce63", "9d65152a"],
    ),
    (("worker-1", "worker-2"), "203.0.113.7", ["worker-2", "worker-1"], ["719c3afe", "fa9a78a6"]),
    # A non-ASCII name: the text is hashed as UTF-8.
    (("node-1", "nœud-1"), "198.51.100.1", ["nœud-1", "node-1"], ["0917b944", "c458fc9d"]),
]


@pytest.mark.parametrize(("nodes", "ip", "order", "prefixes"), VECTORS)
def test_vectors_are_what_hashlib_says(
    nodes: tuple[str, ...], ip: str, order: list[str], prefixes: list[str]
) -> None:
    """The table itself, checked with nothing but hashlib."""
    digests = [hashlib.sha256((node + "#" + ip).encode("utf-8")).hexdigest() for node in order]
    assert [d[:8] for d in digests] == prefixes
    assert digests == sorted(digests)
    assert sorted(order) == sorted(nodes)


@pytest.mark.parametrize(("nodes", "ip", "order", "prefixes"), VECTORS)
def test_the_labs_ranking_follows_the_vectors(
    nodes: tuple[str, ...], ip: str, order: list[str], prefixes: list[str]
) -> None:
    assert election_ranking(nodes, ip) == order
    assert election_ranking(reversed(nodes), ip) == order


@pytest.mark.parametrize(("nodes", "ip", "order", "prefixes"), VECTORS)
def test_the_products_election_follows_the_vectors(
    nodes: tuple[str, ...], ip: str, order: list[str], prefixes: list[str]
) -> None:
    assert election_order(nodes, ipaddress.ip_address(ip)) == order


def test_the_canonical_text_of_the_ip_is_hashed() -> None:
    """An IP written another way elects as its canonical form does."""
    assert election_ranking(("n1", "n2", "n3"), "2001:DB8:0:0::0100") == ["n3", "n2", "n1"]


def test_no_candidates_no_winner() -> None:
    assert election_ranking((), "192.0.2.100") == []
