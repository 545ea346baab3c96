"""`metallb-py render`: addon values (Helm, Konvoy, Kontena) to the full manifest set.

Exit codes: 0 rendered, 1 invalid values (every problem with its field path), 2 unreadable.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from metallb_py.addons.manifests import manifest_files
from metallb_py.addons.values import FORMATS, read_values, with_config
from metallb_py.config import BgpType, ConfigError


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
    shown = "<stdin>" if values_path == "-" else values_path
    try:
        text = (
            sys.stdin.read()
            if values_path == "-"
            else Path(values_path).read_text(encoding="utf-8-sig")
        )
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"{shown}: cannot read: {exc}", err=True)
        sys.exit(2)
    try:
        addon = read_values(text, fmt)
        options = replace(with_config(addon, BgpType.NATIVE), namespace=namespace)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(f"{shown}: {p}", err=True)
        sys.exit(1)
    for note in addon.notes:
        click.echo(f"{shown}: note: {note}", err=True)
    files = manifest_files(options)
    if output_dir is None:
        click.echo("---\n".join(f"# {f.name}\n" + f.text() for f in files), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        (output_dir / f.name).write_text(f.text())
    resources = "".join(f"- {f.name}\n" for f in files)
    (output_dir / "Kustomization").write_text(
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{resources}"
    )
    click.echo(f"wrote {len(files)} files to {output_dir}", err=True)
