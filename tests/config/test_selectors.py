"""`node-selectors` (docs/config.md): Kubernetes label syntax, operators, and their meaning."""

from __future__ import annotations

import pytest

from metallb_py.config import NodeSelector, SelectorOperator, SelectorRequirement
from metallb_py.config.labels import label_key_errors, label_value_errors

from .util import one, parse, peer, problems


def selectors(block: str) -> tuple[NodeSelector, ...]:
    return parse(peer("node-selectors:\n" + block)).peers[0].node_selectors


def test_labels_and_expressions_are_parsed_and_normalised() -> None:
    (sel,) = selectors(
        """\
        - match-labels:
            rack: frontend
            kubernetes.io/hostname: node-1
          match-expressions:
          - {key: zone, operator: NotIn, values: [b, a, b]}
          - {key: gpu, operator: Exists}
          - {key: example.com/tier, operator: In, values: [gold]}
          - {key: spare, operator: DoesNotExist, values: []}
        """
    )
    assert sel.match_labels == (("kubernetes.io/hostname", "node-1"), ("rack", "frontend"))
    assert sel.match_expressions == (
        SelectorRequirement("example.com/tier", SelectorOperator.IN, ("gold",)),
        SelectorRequirement("gpu", SelectorOperator.EXISTS),
        SelectorRequirement("spare", SelectorOperator.DOES_NOT_EXIST),
        SelectorRequirement("zone", SelectorOperator.NOT_IN, ("a", "b")),
    )


@pytest.mark.parametrize(
    ("block", "labels", "selected"),
    [
        ("[]", {}, True),
        ("- {}", {"x": "y"}, True),
        ("- match-labels: {rack: a}", {"rack": "a"}, True),
        ("- match-labels: {rack: a}", {"rack": "b"}, False),
        ("- match-labels: {rack: a}", {}, False),
        ("- match-labels: {rack: a, row: '1'}", {"rack": "a"}, False),  # AND inside one
        ("- match-labels: {rack: a}\n- match-labels: {rack: b}", {"rack": "b"}, True),  # OR
        ("- match-expressions: [{key: rack, operator: NotIn, values: [a]}]", {}, True),
        ("- match-expressions: [{key: rack, operator: DoesNotExist}]", {}, True),
        ("- match-expressions: [{key: rack, operator: Exists}]", {}, False),
        ("- match-expressions: [{key: rack, operator: In, values: [a, b]}]", {"rack": "b"}, True),
    ],
)
def test_selection_semantics(block: str, labels: dict[str, str], selected: bool) -> None:
    text = peer("node-selectors: []") if block == "[]" else peer("node-selectors:\n" + block)
    assert parse(text).peers[0].selects(labels) is selected


@pytest.mark.parametrize(
    ("expression", "path", "reason"),
    [
        (
            "{key: k, operator: in, values: [a]}",
            "operator",
            "operators are case-sensitive: write 'In'",
        ),
        (
            "{key: k, operator: Surrounds, values: [a]}",
            "operator",
            "'Surrounds' is not a valid selector operator",
        ),
        ("{key: k, operator: In}", "values", "operator In needs a non-empty values list"),
        (
            "{key: k, operator: NotIn, values: []}",
            "values",
            "operator NotIn needs a non-empty values list",
        ),
        ("{key: k, operator: Exists, values: [a]}", "values", "operator Exists takes no values"),
        (
            "{key: k, operator: DoesNotExist, values: [a]}",
            "values",
            "operator DoesNotExist takes no values",
        ),
        ("{operator: Exists}", "key", "a match expression needs a key"),
        ("{key: k}", "operator", "a match expression needs an operator"),
        ("{key: -k, operator: Exists}", "key", "the name part must consist of"),
        ("{key: k, operator: In, values: [-a]}", "values[0]", "invalid label value '-a'"),
        ("{key: k, operator: In, values: [[a]]}", "values[0]", "expected a string, got a list"),
        ("{key: k, operator: In, values: a}", "values", "expected a list"),
    ],
)
def test_invalid_expressions(expression: str, path: str, reason: str) -> None:
    problem = one(peer(f"node-selectors:\n- match-expressions:\n  - {expression}"))
    assert problem.path == f"peers[0].node-selectors[0].match-expressions[0].{path}"
    assert reason in problem.reason
    assert problem.line == 7


def test_invalid_match_labels() -> None:
    found = problems(
        peer(
            """\
            node-selectors:
            - match-labels:
                'a/b/c': x
                Bad_Prefix.com/x: y
                ok: -bad-
                foo:
                  bar: baz
            """
        )
    )
    prefix = "peers[0].node-selectors[0].match-labels"
    assert [(p.path, p.line) for p in found] == [
        (f"{prefix}.foo", 11),
        (f'{prefix}["a/b/c"]', 7),
        (f'{prefix}["Bad_Prefix.com/x"]', 8),
        (f"{prefix}.ok", 9),
    ]
    assert "expected a string, got a mapping" in found[0].reason
    assert "one '/'" in found[1].reason
    assert "lower-case DNS subdomain" in found[2].reason
    assert "invalid label value '-bad-'" in found[3].reason


def test_camel_case_selector_keys_get_a_hint() -> None:
    problem = one(peer("node-selectors:\n- matchLabels: {a: b}"))
    assert problem.path == "peers[0].node-selectors[0].matchLabels"
    assert "use 'match-labels'" in problem.reason


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("rack", True),
        ("kubernetes.io/hostname", True),
        ("node-role.kubernetes.io/worker", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("example.com/" + "a" * 63, True),
        ("a" * 253 + "/x", True),  # Kubernetes checks the subdomain's length, not its labels'
        ("a" * 254 + "/x", False),
        ("/x", False),
        ("a/b/c", False),
        ("Example.com/x", False),
        ("x/", False),
        ("-x", False),
        ("x_", False),
        ("x_y.z-1", True),
        ("", False),
        ("a b", False),
    ],
)
def test_label_key_syntax(key: str, valid: bool) -> None:
    assert (label_key_errors(key) == []) is valid


def test_prefix_length_limit() -> None:
    prefix = ".".join(["a" * 63] * 4)[:253]
    assert label_key_errors(prefix + "/x") == []
    assert "at most 253" in label_key_errors(prefix + "a/x")[0]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("a", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("a.b_c-d", True),
        ("-a", False),
        ("a-", False),
        ("a b", False),
        ("ü", False),
    ],
)
def test_label_value_syntax(value: str, valid: bool) -> None:
    assert (label_value_errors(value) == []) is valid
