"""`metallb-py config convert`: ConfigMap <-> v0.13 custom resources, and addon values to
either. Registered in the `config` group by `metallb_py/cli/config_cmd.py`.

Exit codes: 0 converted, 1 invalid input or something the target cannot express (unless
--allow-loss), 2 unreadable input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from metallb_py.addons.convert import SOURCES, TARGETS
from metallb_py.addons.convert import convert as run_convert
from metallb_py.cli.exits import EXIT_INVALID, refuse
from metallb_py.cli.files import read_text, shown, write_text
from metallb_py.cli.options import bgp_type_option
from metallb_py.config import BgpType, ConfigError


@click.command()
@click.argument("path", metavar="PATH")
@click.option("--from", "source", type=click.Choice(SOURCES), required=True, help="Input format.")
@click.option("--to", "target", type=click.Choice(TARGETS), required=True, help="Output format.")
@bgp_type_option("Validate the config for the native BGP speaker or the FRR one.")
@click.option(
    "--allow-loss",
    is_flag=True,
    help="Write the output even when parts of the input cannot be expressed (they are listed).",
)
@click.option("-o", "--output", "out", default="-", help="Output file (default: stdout).")
def convert(
    *, path: str, source: str, target: str, bgp_type: str, allow_loss: bool, out: str
) -> None:
    """Convert the MetalLB config in PATH (a file, or - for stdin).

    \b
    --from configmap  a ConfigMap manifest (data.config) or the raw config YAML
    --from helm       MetalLB chart values (configInline)
    --from konvoy     a Konvoy cluster.yaml (the metallb addon's values)
    --from kontena    Kontena values (kontena-network-lb, underscore keys)
    --from crds       MetalLB v0.13 IPAddressPool, L2Advertisement, BGPAdvertisement,
                      Community, BGPPeer, BFDProfile objects
    --to configmap    the ConfigMap `config` metallb-py reads
    --to crds         the v0.13 custom resources (migration to MetalLB v0.13+)

    Everything the target cannot express is named with its field path; without
    --allow-loss that is an error (exit 1).
    """
    name = shown(path)
    text = read_text(path)
    try:
        result = run_convert(text, source, target, BgpType(bgp_type))
    except ConfigError as exc:
        refuse(name, exc.problems)
    for note in result.notes:
        click.echo(f"{name}: note: {note}", err=True)
    for loss in result.losses:
        click.echo(f"{name}: cannot express in {target}: {loss}", err=True)
    if result.losses and not allow_loss:
        click.echo(
            f"{name}: not converted: {len(result.losses)} part(s) cannot be expressed"
            " (use --allow-loss to write the rest)",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    if out == "-":
        click.echo(result.text, nl=False)
    else:
        write_text(Path(out), result.text)
