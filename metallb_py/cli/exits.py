"""The exit codes of every `metallb-py` command (docs/install.md, "Exit codes"), and what an
internal error looks like: a script must be able to tell a refusal from a crash.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable
from typing import NoReturn

import click

from metallb_py.config import Problem

EXIT_OK = 0
EXIT_INVALID = 1
"""Invalid input, a refused config, errors found (the answer is "no")."""
EXIT_USAGE = 2
"""Bad options, unreadable input, an unreachable cluster (no answer)."""
EXIT_INTERNAL = 70
"""EX_SOFTWARE (sysexits.h): a bug in metallb-py; the message says so."""


def refuse(name: str, problems: Iterable[Problem]) -> NoReturn:
    """Every problem of the input `name`, one per line on stderr, then exit 1."""
    for problem in problems:
        click.echo(f"{name}: {problem}", err=True)
    sys.exit(EXIT_INVALID)


def internal_error(exc: BaseException, debug: bool) -> None:
    """Report an unexpected exception in one line (the traceback with --debug) and exit 70."""
    detail = str(exc).splitlines()[0] if str(exc) else ""
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug else " (run with --debug for the traceback)"
    click.echo(f"metallb-py: internal error: {what}{hint}; please report it", err=True)
    sys.exit(EXIT_INTERNAL)
