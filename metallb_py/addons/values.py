"""Addon values -> install options and MetalLB config, whichever addon wrote them: Helm chart
values (`helm.py`), a Konvoy `cluster.yaml` (`konvoy.py`) or Kontena Pharos values
(`kontena.py`). `render` is the whole of `metallb-py render` without the files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from yaml.nodes import MappingNode, Node

from metallb_py.addons.addon import AddonValues, with_config
from metallb_py.addons.helm import read_helm
from metallb_py.addons.kontena import block_of, read_kontena
from metallb_py.addons.konvoy import read_konvoy
from metallb_py.addons.manifests import DEFAULT_NAMESPACE, ManifestFile, manifest_files
from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.model import BgpType
from metallb_py.config.yamlnodes import child, load_documents, scalar_text
from metallb_py.config.yamltree import describe, line_of

FORMATS = ("helm", "konvoy", "kontena")


def detect(docs: list[Node | None]) -> str:
    """Which addon format a values file is; wrong kinds are errors naming what was found."""
    first = next((d for d in docs if d is not None), None)
    if first is None:
        return "helm"
    if not isinstance(first, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"addon values must be a YAML mapping, got {describe(first)}",
                    None,
                    line_of(first),
                )
            ]
        )
    if any(scalar_text(child(d, "kind")) == "ClusterConfiguration" for d in docs):
        return "konvoy"
    if block_of(first) is not None:
        return "kontena"
    kind = scalar_text(child(first, "kind"))
    api = scalar_text(child(first, "apiVersion"))
    if kind is not None or api is not None:
        hint = (
            " (a MetalLB config: use `metallb-py config convert`)"
            if kind == "ConfigMap" or (api or "").startswith("metallb.io/")
            else ""
        )
        raise ConfigError(
            [
                Problem(
                    "kind",
                    f"expected addon values (Helm values, a Konvoy ClusterConfiguration or "
                    f"Kontena values), got {api or '?'} {kind or '?'}{hint}",
                    kind,
                    line_of(child(first, "kind") or first),
                )
            ]
        )
    return "helm"


def read_values(text: str, fmt: str = "auto") -> AddonValues:
    """Addon values of format `fmt` (or detected); values of another format are an error."""
    docs = load_documents(text)
    if fmt == "auto":
        fmt = found = detect(docs)
    else:
        try:
            found = detect(docs)
        except ConfigError:
            found = fmt  # the format's own reader explains what is wrong
    if found not in (fmt, "helm"):
        raise ConfigError(
            [Problem("", f"these look like {found} values, not {fmt} values: use {found}")]
        )
    if fmt == "konvoy":
        return read_konvoy(docs)
    real = [d for d in docs if d is not None]
    if len(real) > 1:
        raise ConfigError(
            [Problem("", f"expected one YAML document of {fmt} values, found {len(real)}")]
        )
    root = real[0] if real else None
    if fmt == "kontena":
        return read_kontena(root)
    if root is not None and not isinstance(root, MappingNode):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"Helm values must be a YAML mapping, got {describe(root)}",
                    None,
                    line_of(root),
                )
            ]
        )
    return read_helm(root)


@dataclass(frozen=True)
class Rendered:
    files: list[ManifestFile]
    notes: tuple[str, ...]


def render(text: str, fmt: str = "auto", namespace: str = DEFAULT_NAMESPACE) -> Rendered:
    """The manifest set for addon values (`metallb-py render`); ConfigError when they are
    invalid, with every problem's path and line in the values."""
    addon = read_values(text, fmt)
    options = replace(with_config(addon, BgpType.NATIVE), namespace=namespace)
    return Rendered(manifest_files(options), addon.notes)
