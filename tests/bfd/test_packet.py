"""The control packet codec against scapy's BFD layer (an independent oracle): what we encode
scapy reads field for field, what scapy builds we decode, and every discard rule of RFC 5880
section 6.8.6 that needs only the packet."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.contrib.bfd import BFD

from metallb_py.bfd.packet import (
    ControlPacket,
    Diag,
    DiscardedError,
    DiscardRule,
    State,
    decode,
    encode,
)


def scapy_packet(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "version": 1,
        "diag": 0,
        "sta": 1,
        "flags": 0,
        "detect_mult": 3,
        "my_discriminator": 7,
        "your_discriminator": 0,
        "min_tx_interval": 1_000_000,
        "min_rx_interval": 300_000,
        "echo_rx_interval": 0,
    }
    base.update(fields)
    return bytes(BFD(**base))


def test_encode_is_what_scapy_reads() -> None:
    packet = ControlPacket(
        state=State.UP,
        my_discriminator=0x01020304,
        your_discriminator=0xA0B0C0D0,
        desired_min_tx=100_000,
        required_min_rx=250_000,
        detect_mult=5,
        diag=Diag.NEIGHBOR_SIGNALED_DOWN,
        poll=True,
    )
    wire = encode(packet)
    assert len(wire) == 24
    seen = BFD(wire)
    assert (seen.version, seen.diag, seen.sta, seen.detect_mult, seen.len) == (1, 3, 3, 5, 24)
    assert str(seen.flags) == "P"
    assert (seen.my_discriminator, seen.your_discriminator) == (0x01020304, 0xA0B0C0D0)
    assert (seen.min_tx_interval, seen.min_rx_interval, seen.echo_rx_interval) == (
        100_000,
        250_000,
        0,
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("", {}),
        ("F", {"final": True}),
        ("C", {"control_plane_independent": True}),
        ("D", {"demand": True}),
    ],
)
def test_decode_what_scapy_builds(flags: str, expected: dict[str, bool]) -> None:
    wire = scapy_packet(sta=2, diag=1, flags=flags, your_discriminator=9, detect_mult=4)
    packet = decode(wire)
    assert packet == ControlPacket(
        state=State.INIT,
        my_discriminator=7,
        your_discriminator=9,
        desired_min_tx=1_000_000,
        required_min_rx=300_000,
        detect_mult=4,
        diag=1,
        **expected,
    )


def test_trailing_bytes_beyond_the_length_are_ignored() -> None:
    assert decode(scapy_packet() + b"\0\0\0\0").my_discriminator == 7


def set_length(wire: bytes, length: int) -> bytes:
    return wire[:3] + bytes([length]) + wire[4:]


@pytest.mark.parametrize(
    ("wire", "rule"),
    [
        (scapy_packet()[:23], DiscardRule.TOO_SHORT),
        (b"", DiscardRule.TOO_SHORT),
        (scapy_packet(version=0), DiscardRule.BAD_VERSION),
        (scapy_packet(version=2), DiscardRule.BAD_VERSION),
        (set_length(scapy_packet(), 23), DiscardRule.LENGTH_TOO_SMALL),
        (set_length(scapy_packet(), 0), DiscardRule.LENGTH_TOO_SMALL),
        (set_length(scapy_packet(flags="A"), 25), DiscardRule.LENGTH_TOO_SMALL),
        (set_length(scapy_packet(), 25), DiscardRule.LENGTH_BEYOND_PAYLOAD),
        (set_length(scapy_packet(), 255), DiscardRule.LENGTH_BEYOND_PAYLOAD),
        (scapy_packet(detect_mult=0), DiscardRule.DETECT_MULT_ZERO),
        (scapy_packet(flags="M"), DiscardRule.MULTIPOINT),
        (scapy_packet(my_discriminator=0), DiscardRule.MY_DISCRIMINATOR_ZERO),
        (scapy_packet(sta=2), DiscardRule.YOUR_DISCRIMINATOR_ZERO),
        (scapy_packet(sta=3), DiscardRule.YOUR_DISCRIMINATOR_ZERO),
        (
            bytes(
                BFD(
                    sta=1,
                    flags="A",
                    my_discriminator=7,
                    your_discriminator=0,
                    optional_auth=b"\x01\x05\x01ab",
                )
            ),
            DiscardRule.AUTHENTICATION,
        ),
        (scapy_packet(flags="PF"), DiscardRule.POLL_AND_FINAL),
    ],
)
def test_discard_rules(wire: bytes, rule: DiscardRule) -> None:
    with pytest.raises(DiscardedError) as caught:
        decode(wire)
    assert caught.value.rule is rule


@pytest.mark.parametrize("state", [0, 1])
def test_your_discriminator_zero_is_fine_when_down_or_admin_down(state: int) -> None:
    assert decode(scapy_packet(sta=state)).state == state
