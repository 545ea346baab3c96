"""`metallb-py render`: addon values (Helm, Konvoy, Kontena) to the full manifest set.

Exit codes: 0 rendered, 1 invalid values (every problem with its field path), 2 unreadable.
"""

from __future__ import annotations

from pathlib import Path

import click

from metallb_py.addons.values import FORMATS
from metallb_py.addons.values import render as render_values
from metallb_py.cli.exits import refuse
from metallb_py.cli.files import read_text, shown, write_text
from metallb_py.config import ConfigError


@click.command()
@click.argument("values_path", metavar="VALUES")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per part (and a Kustomization) here instead of printing to stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto", *FORMATS)),
    default="auto",
    show_default=True,
    help="Values format; auto: Konvoy if a ClusterConfiguration, Kontena if a "
    "kontena-network-lb block, else Helm chart values.",
)
@click.option("--namespace", default="metallb-system", show_default=True)
def render(*, values_path: str, output_dir: Path | None, fmt: str, namespace: str) -> None:
    """Render the manifests (namespace, metallb, config ConfigMap, Prometheus operator
    objects and alerts when enabled) for the addon values in VALUES (a file or -)."""
    name = shown(values_path)
    text = read_text(values_path)
    try:
        rendered = render_values(text, fmt, namespace)
    except ConfigError as exc:
        refuse(name, exc.problems)
    for note in rendered.notes:
        click.echo(f"{name}: note: {note}", err=True)
    files = rendered.files
    if output_dir is None:
        click.echo("---\n".join(f"# {f.name}\n" + f.text() for f in files), nl=False)
        return
    for f in files:
        write_text(output_dir / f.name, f.text())
    resources = "".join(f"- {f.name}\n" for f in files)
    kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    write_text(output_dir / "Kustomization", f"{kustomization}resources:\n{resources}")
    click.echo(f"wrote {len(files)} files to {output_dir}", err=True)
