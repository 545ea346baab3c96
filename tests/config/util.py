"""Helpers for the config tests: parse a dedented text and get the Config or the problems."""

from __future__ import annotations

from textwrap import dedent

import pytest

from metallb_py.config import (
    BgpType,
    Config,
    ConfigError,
    Problem,
    parse_config,
    parse_config_with_warnings,
)

PEER = """\
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 192.0.2.1
"""


def parse(text: str, bgp_type: str = "native") -> Config:
    return parse_config(dedent(text), BgpType(bgp_type))


def warnings(text: str, bgp_type: str = "native") -> tuple[Problem, ...]:
    return parse_config_with_warnings(dedent(text), BgpType(bgp_type))[1]


def problems(text: str, bgp_type: str = "native") -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse_config(dedent(text), BgpType(bgp_type))
    return info.value.problems


def one(text: str, bgp_type: str = "native") -> Problem:
    """The single problem of `text` (fails when there are several: each test checks one rule)."""
    found = problems(text, bgp_type)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def peer(extra: str = "", bgp_type: str = "native") -> str:
    """The minimal valid peer plus `extra` (lines at the peer's indentation, dedented)."""
    lines = dedent(extra).strip("\n").splitlines()
    return PEER + "".join(f"  {line}\n" for line in lines)


def pool(addresses: str, protocol: str = "layer2", extra: str = "") -> str:
    lines = dedent(extra).strip("\n").splitlines()
    return (
        "address-pools:\n- name: p\n"
        f"  protocol: {protocol}\n  addresses: {addresses}\n"
        + "".join(f"  {line}\n" for line in lines)
    )
