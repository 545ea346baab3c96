"""One label-selector matcher for the text form and the object form (matchLabels +
matchExpressions), and agreement with the config's node-selectors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.config.model import NodeSelector, SelectorOperator, SelectorRequirement
from metallb_py.k8s.selectors import (
    NODE_SELECTOR_OPERATORS,
    parse_label_selector,
    requirement_from_expression,
    selector_from_object,
)

LABELS = {"zone": "a", "rack": "r1", "size": "5"}


@pytest.mark.parametrize(
    ("selector", "text", "expected"),
    [
        ({}, "", True),
        ({"matchLabels": {"zone": "a"}}, "zone=a", True),
        ({"matchLabels": {"zone": "b"}}, "zone=b", False),
        ({"matchLabels": {"gpu": "yes"}}, "gpu=yes", False),
        (
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            "zone in (a,b)",
            True,
        ),
        (
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},
            "zone notin (a)",
            False,
        ),
        (
            {"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["yes"]}]},
            "gpu notin (yes)",
            True,  # an absent label is "not in"
        ),
        ({"matchExpressions": [{"key": "rack", "operator": "Exists"}]}, "rack", True),
        ({"matchExpressions": [{"key": "rack", "operator": "DoesNotExist"}]}, "!rack", False),
        (
            {
                "matchLabels": {"zone": "a"},
                "matchExpressions": [{"key": "rack", "operator": "In", "values": ["r2"]}],
            },
            "zone=a,rack in (r2)",
            False,  # every requirement must hold
        ),
    ],
)
def test_object_and_text_forms_decide_alike(
    selector: dict[str, Any], text: str, expected: bool
) -> None:
    parsed = selector_from_object(selector)
    assert parsed is not None
    assert parsed.matches_labels(LABELS) is expected
    assert parse_label_selector(text).matches_labels(LABELS) is expected
    assert parsed.matches({"metadata": {"labels": LABELS}}) is expected


def test_malformed_expressions() -> None:
    assert selector_from_object({"matchExpressions": [{"key": "a", "operator": "Gt"}]}) is None
    assert selector_from_object({"matchExpressions": [{"operator": "Exists"}]}) is None
    assert requirement_from_expression({"key": "a", "operator": "Bogus"}) is None
    gt = {"key": "size", "operator": "Gt", "values": ["4"]}
    assert requirement_from_expression(gt) is None  # not a label-selector operator
    node_gt = requirement_from_expression(gt, NODE_SELECTOR_OPERATORS)
    assert node_gt is not None and node_gt.matches(LABELS)
    assert requirement_from_expression({**gt, "values": ["x"]}, NODE_SELECTOR_OPERATORS) is None
    assert requirement_from_expression({**gt, "values": []}, NODE_SELECTOR_OPERATORS) is None


_KEYS = st.sampled_from(["zone", "rack", "gpu"])
_VALUES = st.sampled_from(["a", "b", "r1"])


@given(
    labels=st.dictionaries(_KEYS, _VALUES, max_size=3),
    match_labels=st.dictionaries(_KEYS, _VALUES, max_size=2),
    expressions=st.lists(
        st.tuples(
            _KEYS,
            st.sampled_from(list(SelectorOperator)),
            st.lists(_VALUES, min_size=1, max_size=2),
        ),
        max_size=3,
    ),
)
def test_config_node_selectors_agree(
    labels: dict[str, str],
    match_labels: dict[str, str],
    expressions: list[tuple[str, SelectorOperator, list[str]]],
) -> None:
    """The config's `node-selectors` are label selectors in object form: the same answer."""
    config_form = NodeSelector(
        tuple(match_labels.items()),
        tuple(
            SelectorRequirement(
                key,
                op,
                tuple(values) if op in (SelectorOperator.IN, SelectorOperator.NOT_IN) else (),
            )
            for key, op, values in expressions
        ),
    )
    object_form = selector_from_object(
        {
            "matchLabels": match_labels,
            "matchExpressions": [
                {"key": r.key, "operator": str(r.operator), "values": list(r.values)}
                for r in config_form.match_expressions
            ],
        }
    )
    assert object_form is not None
    assert object_form.matches_labels(labels) is config_form.matches(labels)
