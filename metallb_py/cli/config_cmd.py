"""`metallb-py config check`: validate a config before it reaches the cluster.

Exit codes: 0 valid, 1 invalid (every problem listed), 2 usage error or unreadable input.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any, BinaryIO

import click

from metallb_py.cli.options import bgp_type_option, text_or_json_option
from metallb_py.config import (
    BgpType,
    Config,
    ConfigError,
    Problem,
    parse_config_with_warnings,
    read_config_document,
)
from metallb_py.config.document import MAX_MANIFEST_BYTES, ConfigDocument

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


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
    shown = "<stdin>" if path == "-" else path
    raw = read_input(path, shown)
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
        click.echo(json.dumps(_report(shown, bgp_type, result, problems, warnings), indent=2))
    else:
        for w in warnings:
            click.echo(f"{shown}: warning: {w}", err=True)
        for p in problems:
            click.echo(f"{shown}: {p}", err=True)
        if result is not None:
            click.echo(f"valid: {_summary(result)}")
        else:
            click.echo(f"invalid: {_plural(len(problems), 'problem')}", err=True)
    sys.exit(EXIT_VALID if result is not None else EXIT_INVALID)


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes (click 8.5 deprecates click.get_binary_stream)."""
    return sys.stdin.buffer


def read_input(path: str, shown: str) -> bytes:
    """At most one byte more than the largest accepted input; exit 2 when unreadable."""
    try:
        if path == "-":
            return stdin_bytes().read(MAX_MANIFEST_BYTES + 1)
        with open(path, "rb") as f:
            return f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        click.echo(f"{shown}: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


def decode_input(raw: bytes) -> str:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"the input is larger than {MAX_MANIFEST_BYTES} bytes; a ConfigMap holds at"
                    " most 1 MiB, so this cannot be a deployable MetalLB config",
                )
            ]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem("", f"the input is not UTF-8 text (byte {exc.start}): not a YAML config")]
        ) from None


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
    shown: str,
    bgp_type: str,
    result: Config | None,
    problems: list[Problem],
    warnings: list[Problem],
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "path": shown,
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
