"""Kubernetes label selectors, matched as the API server does: the one matcher of the product.

Two written forms reach it:
* the text form of list and watch requests and of `doctor --ignore-node-selector` (`a=b,c!=d,
  e in (f),!g, h>1`), parsed by `parse_label_selector`; a selector that does not parse raises
  `SelectorError` with the API server's wording;
* the object form (`matchLabels` + `matchExpressions`, as in CRDs, the config's
  `node-selectors` and, with `Gt`/`Lt`, node affinity), built by `selector_from_object` and
  `requirement_from_expression`.
`matchLabels: {k: v}` is `k=v`; the operators In, NotIn, Exists and DoesNotExist are `in`,
`notin`, exists and `!`; Gt and Lt are `>` and `<`. One `Requirement.matches` therefore decides
for every form. Pure: doctor, the lab's API server and the addons use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.k8s.objects import mapping, sequence


class SelectorError(ValueError):
    """The selector text does not parse (the API server answers 400 BadRequest)."""


_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's `metadata.labels` satisfy every requirement."""
        return self.matches_labels(mapping(mapping(obj.get("metadata")).get("labels")))

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str, text: str) -> None:
    if not key or len(key.rpartition("/")[2]) > 63 or not _KEY.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {text!r}")


def _check_value(value: str, text: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f"unable to parse requirement: invalid label value {value!r} in {text!r}"
        )


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^=!<>\s]+)\s*(==|!=|=|>|<)\s*(.*?)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw_part in _split_top_level(text):
        part = raw_part.strip()
        if not part:
            raise SelectorError(f"unable to parse requirement: empty requirement in {text!r}")
        if m := _SET_RE.match(part):
            key, op, raw = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in raw.split(",")) if raw.strip() else ()
            _check_key(key, text)
            if not values:
                raise SelectorError(f"unable to parse requirement: {op} needs values in {text!r}")
            for v in values:
                _check_value(v, text)
            reqs.append(Requirement(key, op, tuple(sorted(set(values)))))
        elif m := _CMP_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key, text)
            if op in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise SelectorError(
                        f"unable to parse requirement: {op} needs an integer in {text!r}"
                    ) from None
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            else:
                _check_value(value, text)
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            reqs.append(Requirement(key, "!exists"))
        else:
            _check_key(part, text)
            reqs.append(Requirement(part, "exists"))
    return LabelSelector(tuple(reqs))


LABEL_SELECTOR_OPERATORS = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!exists",
}
"""`matchExpressions` operators of a label selector (metav1.LabelSelectorRequirement)."""
NODE_SELECTOR_OPERATORS = {**LABEL_SELECTOR_OPERATORS, "Gt": "gt", "Lt": "lt"}
"""Node affinity (NodeSelectorRequirement) adds the integer comparisons."""


def requirement_from_expression(
    expression: Mapping[str, Any], operators: Mapping[str, str] = LABEL_SELECTOR_OPERATORS
) -> Requirement | None:
    """One `matchExpressions` entry (`key`, `operator`, `values`); None when it is malformed:
    an operator outside `operators`, no key, or Gt/Lt without exactly one integer. Values are
    read as text."""
    op = operators.get(str(expression.get("operator")))
    key = expression.get("key")
    values = tuple(str(v) for v in sequence(expression.get("values")))
    if op is None or not key:
        return None
    if op in ("gt", "lt"):
        if len(values) != 1:
            return None
        try:
            int(values[0])
        except ValueError:
            return None
    return Requirement(str(key), op, values)


def selector_from_object(selector: Mapping[str, Any]) -> LabelSelector | None:
    """A label selector in object form (`matchLabels`, `matchExpressions`); None when an
    expression is malformed (such a selector matches nothing). The empty selector matches
    everything."""
    requirements = [
        Requirement(str(key), "=", (str(value),))
        for key, value in mapping(selector.get("matchLabels")).items()
    ]
    for expression in sequence(selector.get("matchExpressions")):
        requirement = requirement_from_expression(mapping(expression))
        if requirement is None:
            return None
        requirements.append(requirement)
    return LabelSelector(tuple(requirements))
