"""The `metallb-py` command. Subcommands live in their own modules and load lazily, so
`metallb-py config check` does not pay for importing the Kubernetes client or scapy.

Exit codes are the same for every subcommand (`cli/exits.py`, docs/install.md): an unexpected
exception is an internal error (70, one line; the traceback with `--debug`), never mistaken for
"invalid" (1) or "usage" (2).
"""

from __future__ import annotations

import importlib
import io
import sys
from typing import Any

import click

from metallb_py import __version__
from metallb_py.cli.exits import internal_error

# name -> "module:attribute" of a click.Command; one line per subcommand.
SUBCOMMANDS: dict[str, str] = {
    "config": "metallb_py.cli.config_cmd:config",
    "controller": "metallb_py.cli.controller_cmd:controller",
    "speaker": "metallb_py.cli.speaker_cmd:speaker",
    "lab": "metallb_lab.cli:lab",
    "plan": "metallb_py.cli.plan_cmd:plan",
    "render": "metallb_py.cli.render_cmd:render",
    "doctor": "metallb_py.cli.doctor_cmd:doctor",
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            internal_error(exc, bool(ctx.params.get("debug")))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            return _not_installed(cmd_name, exc.name)
        command: Any = getattr(loaded, attr)
        assert isinstance(command, click.Command)
        return command


LAB_HINT = (
    "the lab is not installed: it ships beside the product as the `lab` extra; "
    "install it with `pip install 'metallb-py[lab]'` (from a source checkout: "
    "`pip install ./lab` or `bash scripts/setup.sh`)"
)


def _not_installed(name: str, package: str) -> click.Command:
    """A stand-in for a subcommand whose optional package is missing: it says how to get it."""

    @click.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        help=f"(not installed: pip install 'metallb-py[{name}]')",
    )
    def missing() -> None:
        click.echo(f"metallb-py {name}: {LAB_HINT} ({package} not importable)", err=True)
        raise SystemExit(2)

    return missing


def _printable_streams() -> None:
    """Text that cannot be encoded (a terminal in Latin-1, a name from a file) is escaped on
    output instead of ending the command with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="metallb-py")
@click.option(
    "--debug",
    is_flag=True,
    help="Show the traceback of an internal error (exit code 70) instead of one line.",
)
def main(debug: bool) -> None:
    """MetalLB v0.12, re-implemented in Python: a network load balancer for bare-metal
    Kubernetes clusters.

    Exit codes: 0 success, 1 invalid input or a refusal, 2 usage error or unreadable input,
    70 internal error (a bug: please report it, with the --debug output)."""
    _printable_streams()
