"""`metallb-py config check`: validate a config before it reaches the cluster.

Exit codes: 0 valid, 1 invalid (every problem listed), 2 usage error or unreadable input.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click

from metallb_py.cli.exits import EXIT_INVALID, EXIT_OK
from metallb_py.cli.files import decode_input, read_input, shown
from metallb_py.cli.options import bgp_type_option, text_or_json_option
from metallb_py.config import (
    BgpType,
    Config,
    ConfigError,
    Problem,
    parse_config_with_warnings,
    read_config_document,
)
from metallb_py.config.document import ConfigDocument


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def config() -> None:
    """Work with MetalLB v0.12 configuration (the `config` key of the ConfigMap)."""


@config.command()
@click.argument("path", metavar="PATH")
@bgp_type_option("Validate for the native BGP speaker or the FRR one (as METALLB_BGP_TYPE).")
@text_or_json_option(
    "text: a summary line or one problem per line on stderr; json: a document on stdout."
)
def check(path: str, bgp_type: str, output: str) -> None:
    """Check the config in PATH (a file, or - for stdin).

    PATH holds either the config YAML itself or a ConfigMap manifest whose data.config is
    the config. Every problem is reported with its field path, e.g.
    address-pools[1].addresses[0]. Exit 0 when valid, 1 when invalid, 2 when PATH cannot be
    read.
    """
    name = shown(path)
    raw = read_input(path)
    problems: list[Problem]
    warnings: list[Problem] = []
    result: Config | None = None
    document: ConfigDocument | None = None
    try:
        text = decode_input(raw)
        if not text.strip():
            raise ConfigError([Problem("", "the input is empty: there is no config to check")])
        document = read_config_document(text)
        warnings.extend(document.notes)
        result, config_warnings = parse_config_with_warnings(document.text, BgpType(bgp_type))
        warnings.extend(locate_problem(document, w) for w in config_warnings)
        problems = []
    except ConfigError as exc:
        problems = [p if document is None else locate_problem(document, p) for p in exc.problems]
    if output == "json":
        click.echo(json.dumps(_report(name, bgp_type, result, problems, warnings), indent=2))
    else:
        for w in warnings:
            click.echo(f"{name}: warning: {w}", err=True)
        for p in problems:
            click.echo(f"{name}: {p}", err=True)
        if result is not None:
            click.echo(f"valid: {_summary(result)}")
        else:
            click.echo(f"invalid: {_plural(len(problems), 'problem')}", err=True)
    sys.exit(EXIT_OK if result is not None else EXIT_INVALID)


def locate_problem(document: ConfigDocument, problem: Problem) -> Problem:
    """Point config lines at the input file's lines when the config sits in a ConfigMap."""
    if (
        document.source != "configmap"
        or problem.line is None
        or problem.path.startswith(("data.", "metadata.", "kind"))
    ):
        return problem
    line = document.input_line(problem.line)
    if line is None:
        # A quoted or folded data.config: its lines are not the file's lines.
        return replace(
            problem, reason=f"{problem.reason} (line {problem.line} of data.config)", line=None
        )
    return replace(problem, line=line)


def _summary(config: Config) -> str:
    addresses = sum(c.num_addresses for pool in config.pools for c in pool.cidrs)
    return (
        f"{_plural(len(config.pools), 'pool')} ({_plural(addresses, 'address', 'addresses')}),"
        f" {_plural(len(config.peers), 'peer')}"
    )


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _report(
    name: str,
    bgp_type: str,
    result: Config | None,
    problems: list[Problem],
    warnings: list[Problem],
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "path": name,
        "bgp_type": bgp_type,
        "valid": result is not None,
        "problems": [p.to_dict() for p in problems],
        "warnings": [w.to_dict() for w in warnings],
    }
    if result is not None:
        report["summary"] = {
            "pools": len(result.pools),
            "addresses": sum(c.num_addresses for pool in result.pools for c in pool.cidrs),
            "peers": len(result.peers),
            "bfd_profiles": len(result.bfd_profiles),
            "text": _summary(result),
        }
    return report


from metallb_py.cli.convert_cmd import convert  # noqa: E402

config.add_command(convert)
