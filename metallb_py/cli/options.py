"""Options the offline commands (`config check`, `config convert`, `plan`) share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from metallb_py.config import BgpType

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def bgp_type_option(help_text: str) -> Decorator:
    """`--bgp-type native|frr`, default native like the speaker (METALLB_BGP_TYPE)."""
    return click.option(
        "--bgp-type",
        type=click.Choice([t.value for t in BgpType]),
        default=BgpType.NATIVE.value,
        show_default=True,
        help=help_text,
    )


def text_or_json_option(help_text: str) -> Decorator:
    """`--output text|json`, default text."""
    return click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=help_text,
    )
