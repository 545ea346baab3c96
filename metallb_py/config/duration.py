"""Go's `time.ParseDuration`, ported exactly.

MetalLB reads `hold-time` and `keepalive-time` with Go's parser, so the accepted strings are
Go's, not Python's: `90s`, `1m30s`, `1.5m`, `-0.5s`, `500ms`, `2h45m`, `0`; a bare `90` is an
error (missing unit). The overflow rules and the float step used for fractions are kept so the
same text gives the same number of nanoseconds as upstream.
"""

from __future__ import annotations

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_MAX_UINT = 1 << 63
"""Go accumulates the magnitude in a uint64 and refuses anything above 1<<63."""


class DurationError(ValueError):
    """The text is not a Go duration; the message follows Go's wording."""


def _is_digit(c: str) -> bool:
    # Go compares bytes against '0'..'9'; str.isdigit() would also accept other scripts.
    return "0" <= c <= "9"


def _leading_int(s: str) -> tuple[int, str]:
    x = 0
    i = 0
    while i < len(s) and _is_digit(s[i]):
        if x > _MAX_UINT // 10:
            raise OverflowError
        x = x * 10 + ord(s[i]) - ord("0")
        if x > _MAX_UINT:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    x = 0
    scale = 1.0
    overflow = False
    i = 0
    while i < len(s) and _is_digit(s[i]):
        if not overflow:
            if x > (_MAX_UINT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - ord("0")
                if y > _MAX_UINT:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration(text: str) -> int:
    """Return the duration in nanoseconds, or raise DurationError with Go's message."""
    orig = text
    quoted = '"' + orig + '"'
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {quoted}")
    total = 0
    while s:
        if not (s[0] == "." or _is_digit(s[0])):
            raise DurationError(f"time: invalid duration {quoted}")
        before = len(s)
        try:
            v, s = _leading_int(s)
        except OverflowError:
            raise DurationError(f"time: invalid duration {quoted}") from None
        pre = before != len(s)
        f, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise DurationError(f"time: invalid duration {quoted}")
        i = 0
        while i < len(s) and not (s[i] == "." or _is_digit(s[i])):
            i += 1
        if i == 0:
            raise DurationError(f"time: missing unit in duration {quoted}")
        unit_text, s = s[:i], s[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(f'time: unknown unit "{unit_text}" in duration {quoted}')
        if v > _MAX_UINT // unit:
            raise DurationError(f"time: invalid duration {quoted}")
        v *= unit
        if f > 0:
            # Go converts through float64 here (nanosecond-exact for fractions of hours).
            v += int(float(f) * (float(unit) / scale))
            if v > _MAX_UINT:
                raise DurationError(f"time: invalid duration {quoted}")
        total += v
        if total > _MAX_UINT:
            raise DurationError(f"time: invalid duration {quoted}")
    if neg:
        return -total
    if total > _MAX_UINT - 1:
        raise DurationError(f"time: invalid duration {quoted}")
    return total


def whole_seconds(nanoseconds: int) -> int:
    """`int(d.Seconds())` in Go: float seconds, truncated toward zero (MetalLB's rounding)."""
    sec = abs(nanoseconds) // SECOND
    nsec = abs(nanoseconds) % SECOND
    if nanoseconds < 0:
        sec, nsec = -sec, -nsec
    return int(float(sec) + float(nsec) / 1e9)
