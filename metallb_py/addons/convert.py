"""`config convert`: move a MetalLB config between its containers.

Sources: a v0.12 ConfigMap (or raw config), Helm/Konvoy/Kontena addon values, v0.13 custom
resources. Targets: the ConfigMap or the custom resources. Every result is checked by the
config parser before it is written, and whatever the target cannot express is returned as a
loss with its field path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from metallb_py.addons import crds
from metallb_py.addons.addon import config_text
from metallb_py.addons.from_crds import crds_to_config
from metallb_py.addons.manifests import DEFAULT_NAMESPACE, config_map
from metallb_py.addons.to_crds import config_to_crds
from metallb_py.addons.values import read_values
from metallb_py.addons.yamlout import dump, dump_documents
from metallb_py.config import BgpType, ConfigError, Problem, parse_config, read_config_document
from metallb_py.config.document import DEFAULT_CONFIGMAP_NAME
from metallb_py.config.yamlnodes import child, load_documents, plain_documents, scalar_text

SOURCES = ("configmap", "helm", "konvoy", "kontena", "crds")
TARGETS = ("configmap", "crds")


@dataclass
class Source:
    """A validated v0.12 config and where it is headed."""

    config: dict[str, Any]
    text: str
    namespace: str = DEFAULT_NAMESPACE
    name: str = DEFAULT_CONFIGMAP_NAME
    originals: list[crds.CrdObject] | None = None
    losses: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    text: str
    objects: list[dict[str, Any]]
    losses: list[Problem]
    notes: list[str]


def _raw_config(text: str) -> dict[str, Any]:
    """The config as plain data with keys and scalars as written (already validated)."""
    docs = plain_documents(text)
    return docs[0] if docs and isinstance(docs[0], dict) else {}


def _validate(text: str, bgp_type: BgpType, line_offset: int | None = 0) -> None:
    try:
        parse_config(text, bgp_type)
    except ConfigError as exc:
        raise ConfigError(
            [
                replace(
                    p,
                    line=None if p.line is None or line_offset is None else p.line + line_offset,
                )
                for p in exc.problems
            ]
        ) from None


def read_configmap(text: str, bgp_type: BgpType) -> Source:
    document = read_config_document(text)
    _validate(document.text, bgp_type, document.line_offset)
    source = Source(_raw_config(document.text), document.text)
    source.notes += [str(n) for n in document.notes]
    meta = child(document.configmap, "metadata")
    if document.configmap is not None:
        source.namespace = scalar_text(child(meta, "namespace")) or DEFAULT_NAMESPACE
        source.name = scalar_text(child(meta, "name")) or DEFAULT_CONFIGMAP_NAME
    annotation = scalar_text(child(child(meta, "annotations"), crds.ORIGINALS_ANNOTATION))
    source.originals, why = crds.parse_originals(annotation)
    if why is not None:
        source.notes.append(
            f"metadata.annotations[{crds.ORIGINALS_ANNOTATION!r}] is ignored ({why}): the"
            " objects are generated from the config"
        )
    return source


def read_addon(text: str, fmt: str, bgp_type: BgpType) -> Source:
    addon = read_values(text, fmt)
    checked = config_text(addon, bgp_type)
    if checked is None or addon.config is None:
        raise ConfigError(
            [
                Problem(
                    "configInline" if addon.kind != "kontena" else "kontena-network-lb",
                    f"these {addon.kind} values carry no MetalLB config (Helm: configInline is "
                    "empty; Kontena: no address_pools or peers)",
                )
            ]
        )
    return Source(addon.config, checked, notes=list(addon.notes))


def read_crds(text: str, bgp_type: BgpType) -> Source:
    objects = crds.read_objects(load_documents(text))
    conversion = crds_to_config(objects)
    config_yaml = dump(conversion.config) if conversion.config else ""
    try:
        parse_config(config_yaml, bgp_type)
    except ConfigError as exc:
        raise ConfigError(
            [
                replace(p, reason=f"{p.reason} (in the converted v0.12 config)", line=None)
                for p in exc.problems
            ]
        ) from None
    return Source(
        conversion.config,
        config_yaml,
        namespace=conversion.namespace,
        originals=objects,
        losses=conversion.losses,
    )


def read_source(text: str, source: str, bgp_type: BgpType) -> Source:
    if source == "configmap":
        return read_configmap(text, bgp_type)
    if source == "crds":
        return read_crds(text, bgp_type)
    if source in ("helm", "konvoy", "kontena"):
        return read_addon(text, source, bgp_type)
    raise ValueError(f"unknown source format {source!r}")


def convert(text: str, source: str, target: str, bgp_type: BgpType = BgpType.NATIVE) -> Result:
    """Convert; invalid input raises ConfigError, inexpressible parts come back as losses."""
    src = read_source(text, source, bgp_type)
    losses = list(src.losses)
    if target == "configmap":
        cm = config_map(src.name, src.namespace, src.text)
        if src.originals and source == "crds":
            cm["metadata"]["annotations"] = {
                crds.ORIGINALS_ANNOTATION: crds.originals_annotation(
                    [o.manifest() for o in src.originals]
                )
            }
        objects = [cm]
    elif target == "crds":
        result = config_to_crds(src.config, src.namespace, src.originals)
        losses += result.losses
        objects = result.objects
    else:
        raise ValueError(f"unknown target format {target!r}")
    header = [f"Converted by `metallb-py config convert --from {source} --to {target}`."]
    if target == "configmap" and src.originals and source == "crds":
        header.append(
            f"The annotation {crds.ORIGINALS_ANNOTATION} keeps the original objects, so"
            " `--to crds` gives them back while the config still says the same."
        )
    for loss in losses:
        header.append(f"NOT CONVERTED: {loss}")
    return Result(dump_documents(objects, "\n".join(header)), objects, losses, src.notes)
