"""`node-selectors` of peers (docs/config.md): Kubernetes label selectors, checked with the
API server's label syntax and reported in full."""

from __future__ import annotations

from metallb_py.config.checks import Checks, strings
from metallb_py.config.decode import Obj, Seq
from metallb_py.config.labels import label_key_errors, label_value_errors
from metallb_py.config.model import NodeSelector, SelectorOperator, SelectorRequirement
from metallb_py.config.yamltree import shorten

_OPERATORS = {op.value: op for op in SelectorOperator}


class SelectorChecks(Checks):
    # --- node-selectors --------------------------------------------------------------

    def _node_selectors(self, p: Obj) -> tuple[NodeSelector, ...] | None:
        seq = p.get("node-selectors")
        if not isinstance(seq, Seq):
            return ()
        good = all(item.value is not None for item in seq.items)
        selectors: list[NodeSelector] = []
        for _, _, sel in seq.good():
            selector = self._node_selector(sel)
            if selector is None:
                good = False
            else:
                selectors.append(selector)
        return tuple(selectors) if good else None

    def _node_selector(self, sel: Obj) -> NodeSelector | None:
        good = not sel.broken and not sel.misspelled
        labels: list[tuple[str, str]] = []
        for pair in sel.get("match-labels") or []:
            path = (*sel.path, "match-labels", pair.key)
            key_errors = label_key_errors(pair.key)
            if key_errors:
                self.error(
                    path,
                    pair.key_node,
                    f"invalid label key {shorten(pair.key)}: " + "; ".join(key_errors),
                    pair.key,
                )
                good = False
            if pair.value is None:
                good = False
                continue
            value_errors = label_value_errors(pair.value)
            if value_errors:
                self.error(
                    path,
                    pair.value_node,
                    f"invalid label value {shorten(pair.value)}: " + "; ".join(value_errors),
                    pair.value,
                )
                good = False
            labels.append((pair.key, pair.value))
        expressions: list[SelectorRequirement] = []
        seq = sel.get("match-expressions")
        if isinstance(seq, Seq):
            if any(item.value is None for item in seq.items):
                good = False
            for _, _, expr in seq.good():
                requirement = self._requirement(expr)
                if requirement is None:
                    good = False
                else:
                    expressions.append(requirement)
        if not good:
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
            key_errors = label_key_errors(key)
            if key_errors:
                self.error(
                    path, node, f"invalid label key {shorten(key)}: " + "; ".join(key_errors), key
                )
                good = False
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
            value_errors = label_value_errors(value)
            if value_errors:
                self.error(
                    (*expr.path, "values", j),
                    value_node,
                    f"invalid label value {shorten(value)}: " + "; ".join(value_errors),
                    value,
                )
                good = False
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
