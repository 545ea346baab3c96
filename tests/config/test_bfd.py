"""`bfd-profiles[]` (docs/config.md), checked in FRR mode where they are allowed."""

from __future__ import annotations

import pytest

from metallb_py.config import BfdProfile

from .util import one, parse, peer, problems

RANGES = {
    "receive-interval": (10, 60000),
    "transmit-interval": (10, 60000),
    "detect-multiplier": (2, 255),
    "echo-interval": (10, 60000),
    "minimum-ttl": (1, 254),
}


def test_defaults_are_none_meaning_frr_default() -> None:
    (profile,) = parse("bfd-profiles:\n- name: p\n", "frr").bfd_profiles
    assert profile == BfdProfile(name="p")


def test_all_fields() -> None:
    (profile,) = parse(
        """\
        bfd-profiles:
        - name: fast
          receive-interval: 100
          transmit-interval: 200
          detect-multiplier: 5
          echo-interval: 60
          echo-mode: true
          passive-mode: yes
          minimum-ttl: 10
        """,
        "frr",
    ).bfd_profiles
    assert profile == BfdProfile("fast", 100, 200, 5, 60, True, True, 10)


@pytest.mark.parametrize(("key", "lo", "hi"), [(k, lo, hi) for k, (lo, hi) in RANGES.items()])
def test_range_boundaries(key: str, lo: int, hi: int) -> None:
    for value in (lo, hi):
        (profile,) = parse(f"bfd-profiles:\n- {{name: p, {key}: {value}}}\n", "frr").bfd_profiles
        assert getattr(profile, key.replace("-", "_")) == value
    for value in (lo - 1, hi + 1):
        problem = one(f"bfd-profiles:\n- {{name: p, {key}: {value}}}\n", "frr")
        assert problem.path == f"bfd-profiles[0].{key}"
        # each field names itself (upstream mislabels echo-interval as "minimum ttl")
        assert problem.reason == f"invalid {key} {value}: must be in the {lo}-{hi}" + (
            " ms range" if "interval" in key else " range"
        )


def test_missing_and_duplicate_names() -> None:
    found = problems(
        """\
        bfd-profiles:
        - receive-interval: 100
        - name: a
        - name: a
          echo-mode: true
        """,
        "frr",
    )
    assert [(p.path, p.line) for p in found] == [
        ("bfd-profiles[0].name", 2),
        ("bfd-profiles[2].name", 4),
    ]
    assert found[0].reason == "missing BFD profile name"
    assert "duplicate BFD profile name 'a' (first: bfd-profiles[1])" in found[1].reason


def test_peer_references_a_profile() -> None:
    text = "bfd-profiles:\n- name: fast\n" + peer("bfd-profile: fast")
    assert parse(text, "frr").peers[0].bfd_profile == "fast"
    problem = one("bfd-profiles:\n- name: fast\n" + peer("bfd-profile: slow"), "frr")
    assert problem.path == "peers[0].bfd-profile"
    assert "peer #1 references bfd-profile 'slow', which is not defined in bfd-profiles" in (
        problem.reason
    )


def test_a_broken_profile_still_counts_as_defined_for_references() -> None:
    text = "bfd-profiles:\n- {name: fast, detect-multiplier: 1}\n" + peer("bfd-profile: fast")
    assert [p.path for p in problems(text, "frr")] == ["bfd-profiles[0].detect-multiplier"]
