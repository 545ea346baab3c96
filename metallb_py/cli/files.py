"""The files the offline commands read and write. Input is read as bytes with a size limit
and decoded strictly (no undecodable byte becomes text that cannot be printed back); a file
that cannot be read or written is a usage error (exit 2), not a crash."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

import click

from metallb_py.cli.exits import EXIT_USAGE
from metallb_py.config import ConfigError, Problem
from metallb_py.config.document import MAX_MANIFEST_BYTES


def shown(path: str) -> str:
    """How a PATH argument is named in messages."""
    return "<stdin>" if path == "-" else path


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes (click 8.5 deprecates click.get_binary_stream)."""
    return sys.stdin.buffer


def read_input(path: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """At most one byte more than `limit` of PATH (- for stdin); exit 2 when unreadable."""
    try:
        if path == "-":
            return stdin_bytes().read(limit + 1)
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        click.echo(f"{shown(path)}: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)


def decode_input(raw: bytes, limit: int = MAX_MANIFEST_BYTES) -> str:
    """UTF-8 text (a BOM is dropped); ConfigError when too large or not UTF-8."""
    if len(raw) > limit:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"the input is larger than {limit} bytes; a ConfigMap holds at most 1 MiB,"
                    " so this cannot be a deployable MetalLB config",
                )
            ]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem("", f"the input is not UTF-8 text (byte {exc.start}): not a YAML config")]
        ) from None


def read_text(path: str, limit: int = MAX_MANIFEST_BYTES) -> str:
    """`read_input` then `decode_input`; exit 2 (usage) when the text cannot be had."""
    try:
        return decode_input(read_input(path, limit), limit)
    except ConfigError as exc:
        click.echo(f"{shown(path)}: cannot read: {exc.problems[0].reason}", err=True)
        sys.exit(EXIT_USAGE)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text (creating the directory); exit 2 when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"{path}: cannot write: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
