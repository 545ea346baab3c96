"""Kubernetes label syntax (k8s.io/apimachinery validation), used by `node-selectors`.

Each function returns the list of reasons the text is invalid (empty when valid), so the
caller can report all of them at once.
"""

from __future__ import annotations

import re

_NAME_MAX = 63
_PREFIX_MAX = 253
_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_VALUE_RE = _NAME_RE


def label_key_errors(key: str) -> list[str]:
    """A qualified name: `[prefix/]name`, prefix a DNS subdomain (≤253), name ≤63."""
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a label key must be a name with an optional DNS-subdomain prefix and one '/'"
            " (e.g. 'example.com/my-label')"
        ]
    errors: list[str] = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("the prefix before '/' must not be empty")
        else:
            errors += _part_errors(
                "the prefix",
                prefix,
                _PREFIX_MAX,
                _DNS1123_SUBDOMAIN_RE,
                "be a lower-case DNS subdomain: letters, digits, '-' and '.', starting and"
                " ending with a letter or digit",
            )
    else:
        name = parts[0]
    if not name:
        errors.append("the name part must not be empty")
        return errors
    return errors + _part_errors(
        "the name part",
        name,
        _NAME_MAX,
        _NAME_RE,
        "consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit",
    )


def label_value_errors(value: str) -> list[str]:
    """A label value: empty, or ≤63 characters matching the label-value pattern."""
    if not value:
        return []
    return _part_errors(
        "a label value",
        value,
        _NAME_MAX,
        _VALUE_RE,
        "be empty or consist of letters, digits, '-', '_' or '.', and start and end with a"
        " letter or digit",
    )


def _part_errors(
    what: str, text: str, limit: int, pattern: re.Pattern[str], must: str
) -> list[str]:
    """`what` must be at most `limit` characters and match `pattern` (`must` says how)."""
    errors: list[str] = []
    if len(text) > limit:
        errors.append(f"{what} must be at most {limit} characters")
    if not pattern.fullmatch(text):
        errors.append(f"{what} must {must}")
    return errors
