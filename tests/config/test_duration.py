"""Go's time.ParseDuration, as MetalLB reads hold-time and keepalive-time (docs/config.md)."""

from __future__ import annotations

import pytest

from metallb_py.config.duration import (
    HOUR,
    MICROSECOND,
    MILLISECOND,
    MINUTE,
    SECOND,
    DurationError,
    parse_go_duration,
    whole_seconds,
)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("0s", 0),
        ("00s", 0),
        ("90s", 90 * SECOND),
        ("1m30s", 90 * SECOND),
        ("1.5m", 90 * SECOND),
        ("500ms", 500 * MILLISECOND),
        ("2h45m", 2 * HOUR + 45 * MINUTE),
        ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6),
        ("1us", MICROSECOND),
        ("1µs", MICROSECOND),  # micro sign
        ("1μs", MICROSECOND),  # Greek mu
        (".5s", 500 * MILLISECOND),
        ("5.s", 5 * SECOND),
        ("3.9s", 3_900_000_000),
        ("+5s", 5 * SECOND),
        ("-1.5h", -90 * MINUTE),
        ("0.000000001s", 1),
        ("0.1ns", 0),
        ("1.0000000005s", 1_000_000_000),
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_accepted(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("90", 'time: missing unit in duration "90"'),
        ("1", "missing unit"),
        ("-", "invalid duration"),
        ("+", "invalid duration"),
        (".s", "invalid duration"),
        ("s", "invalid duration"),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1s1", "missing unit"),
        ("1.2.3s", "missing unit"),
        ("1 s", 'unknown unit " s"'),
        ("1e3s", 'unknown unit "e"'),
        ("0x10s", 'unknown unit "x"'),
        ("١s", "invalid duration"),  # Arabic-Indic digit: Go only takes ASCII digits
        ("9223372036854775808ns", "invalid duration"),
        ("99999999999999999999s", "invalid duration"),
        ("3000000h", "invalid duration"),
        ("1S", 'unknown unit "S"'),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=None) as info:
        parse_go_duration(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("3.9s", 3), ("500ms", 0), ("-0.5s", 0), ("-3.5s", -3), ("1m30.999s", 90)],
)
def test_whole_seconds_truncates_toward_zero(text: str, seconds: int) -> None:
    assert whole_seconds(parse_go_duration(text)) == seconds
