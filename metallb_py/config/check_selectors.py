"""`node-selectors` of peers (docs/config.md): Kubernetes label selectors, checked with the
API server's label syntax and reported in full."""

from __future__ import annotations

from yaml.nodes import Node

from metallb_py.config.checks import Checks, checked_items, strings
from metallb_py.config.decode import Obj, Seq
from metallb_py.config.labels import label_key_errors, label_value_errors
from metallb_py.config.model import NodeSelector, SelectorOperator, SelectorRequirement
from metallb_py.config.yamlnodes import Path
from metallb_py.config.yamltree import shorten

_OPERATORS = {op.value: op for op in SelectorOperator}


class SelectorChecks(Checks):
    # --- node-selectors --------------------------------------------------------------

    def _node_selectors(self, p: Obj) -> tuple[NodeSelector, ...] | None:
        selectors, good = checked_items(p.get("node-selectors"), self._node_selector)
        return tuple(selectors) if good else None

    def _label(self, path: Path, node: Node | None, what: str, text: str) -> bool:
        """Report a label key or value Kubernetes would refuse; True when it is valid."""
        errors = (label_key_errors if what == "key" else label_value_errors)(text)
        if errors:
            self.error(
                path, node, f"invalid label {what} {shorten(text)}: " + "; ".join(errors), text
            )
        return not errors

    def _node_selector(self, sel: Obj) -> NodeSelector | None:
        good = not sel.broken and not sel.misspelled
        labels: list[tuple[str, str]] = []
        for pair in sel.get("match-labels") or []:
            path = (*sel.path, "match-labels", pair.key)
            good = self._label(path, pair.key_node, "key", pair.key) and good
            if pair.value is None:
                good = False
                continue
            good = self._label(path, pair.value_node, "value", pair.value) and good
            labels.append((pair.key, pair.value))
        expressions, expressions_good = checked_items(
            sel.get("match-expressions"), self._requirement
        )
        if not good or not expressions_good:
            return None
        return NodeSelector(
            match_labels=tuple(sorted(labels)),
            match_expressions=tuple(
                sorted(expressions, key=lambda r: (r.key, r.operator.value, r.values))
            ),
        )

    def _requirement(self, expr: Obj) -> SelectorRequirement | None:
        good = not expr.broken and not expr.misspelled
        key = expr.get("key") or ""
        path, node = expr.where("key")
        if not key:
            if expr.ok("key"):
                self.error(path, node, "a match expression needs a key (a label name)")
            good = False
        else:
            good = self._label(path, node, "key", key) and good
        operator_text = expr.get("operator") or ""
        operator = _OPERATORS.get(operator_text)
        path, node = expr.where("operator")
        valid = ", ".join(_OPERATORS)
        if operator is None:
            good = False
            if not operator_text:
                if expr.ok("operator"):
                    self.error(path, node, f"a match expression needs an operator ({valid})")
            else:
                close = [op for op in _OPERATORS if op.lower() == operator_text.lower()]
                hint = f"; operators are case-sensitive: write {close[0]!r}" if close else ""
                self.error(
                    path,
                    node,
                    f"{shorten(operator_text)} is not a valid selector operator ({valid}){hint}",
                    operator_text,
                )
        values: list[str] = []
        seq = expr.get("values")
        for j, value_node, value in strings(seq):
            good = self._label((*expr.path, "values", j), value_node, "value", value) and good
            values.append(value)
        if isinstance(seq, Seq) and any(item.value is None for item in seq.items):
            good = False
        if operator is not None and expr.ok("values"):
            path, node = expr.where("values")
            needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
            if needs_values and not values:
                self.error(path, node, f"operator {operator.value} needs a non-empty values list")
                good = False
            if not needs_values and values:
                self.error(
                    path, node, f"operator {operator.value} takes no values (values must be empty)"
                )
                good = False
        if not good or operator is None:
            return None
        return SelectorRequirement(key, operator, tuple(sorted(set(values))))
