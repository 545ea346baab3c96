"""Find the MetalLB config in what a user hands us: the raw YAML or a ConfigMap manifest.

Users keep the config inside `manifests/*.yaml` (a ConfigMap whose `data.config` is the YAML),
sometimes among other objects in one multi-document file. Both forms are accepted; a ConfigMap
without `config` is refused (MetalLB v0.12 reads it as the empty configuration; docs/config.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode

from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.parser import check_size
from metallb_py.config.yamlnodes import child, is_null, keys_of, scalar_text
from metallb_py.config.yamltree import YamlSyntaxError, compose_all, line_of

MAX_MANIFEST_BYTES = 3 * 1024 * 1024
"""A manifest may carry more than its 1 MiB of data (metadata, last-applied annotation)."""

DEFAULT_CONFIGMAP_NAME = "config"
CONFIG_KEY = "config"
"""The ConfigMap data key MetalLB reads its config from (the only definition)."""


@dataclass(frozen=True)
class ConfigDocument:
    text: str
    """The MetalLB config YAML (possibly "", the empty config)."""
    source: str
    """"config" for raw config text, "configmap" when taken from a manifest's data.config."""
    line_offset: int | None = 0
    """Add to a line of `text` to get the line in the input; None when lines do not map
    (the config was a quoted or folded scalar rather than a `|` block)."""
    notes: tuple[Problem, ...] = ()
    """Warnings about the container (missing `config` key, unusual ConfigMap name)."""
    configmap: Node | None = None
    """The ConfigMap the config was taken from (its metadata), None for raw config text."""

    def input_line(self, line: int | None) -> int | None:
        """The input line of a config line, when it can be known."""
        if line is None or self.line_offset is None:
            return None
        return line + self.line_offset


def missing_config_key(keys: list[str], line: int | None = None) -> Problem:
    """A ConfigMap without `data.config` is refused (MetalLB v0.12 reads it as an empty config,
    so a misspelt key silently means "no pools"; docs/behaviour-differences.md)."""
    present = f" (its data keys: {', '.join(keys)})" if keys else " (it has no data)"
    return Problem(
        "data.config",
        f"the ConfigMap has no `config` key{present}: put the MetalLB configuration under"
        ' data.config; an explicitly empty `config: ""` is the empty configuration',
        None,
        line,
    )


def load_config_document(text: str) -> str:
    """The config YAML inside `text` (raw config or ConfigMap manifest); ConfigError if none."""
    return read_config_document(text).text


def read_config_document(text: str) -> ConfigDocument:
    """Like `load_config_document`, with where the config came from and container notes."""
    check_size(text, MAX_MANIFEST_BYTES, "the input")
    if "kind" not in text:  # no manifest without a kind: skip composing the text twice
        return ConfigDocument(text, "config")
    try:
        docs = [d for d in compose_all(text).documents if d is not None]
    except YamlSyntaxError:
        # Not YAML at all: let the config parser report it against the text as given.
        return ConfigDocument(text, "config")
    manifests = [d for d in docs if isinstance(d, MappingNode) and child(d, "kind") is not None]
    if not manifests:
        return ConfigDocument(text, "config")
    configmaps = [d for d in manifests if scalar_text(child(d, "kind")) == "ConfigMap"]
    if not configmaps:
        kinds = sorted({scalar_text(child(d, "kind")) or "?" for d in manifests})
        raise ConfigError(
            [
                Problem(
                    "kind",
                    f"no ConfigMap found (kinds: {', '.join(kinds)}): metallb-py implements"
                    " MetalLB v0.12, configured by the `config` key of a ConfigMap; custom"
                    " resources such as IPAddressPool or BGPPeer belong to MetalLB v0.13+",
                    kinds[0] if len(kinds) == 1 else kinds,
                    line_of(child(manifests[0], "kind")),
                )
            ]
        )
    if len(configmaps) > 1:
        named = [d for d in configmaps if _name(d) == DEFAULT_CONFIGMAP_NAME]
        if len(named) != 1:
            names = ", ".join(_name(d) or "(unnamed)" for d in configmaps)
            raise ConfigError(
                [
                    Problem(
                        "",
                        f"{len(configmaps)} ConfigMaps in the input ({names}) and not exactly one"
                        f" named {DEFAULT_CONFIGMAP_NAME!r}: pass the one MetalLB reads",
                        None,
                        line_of(configmaps[1]),
                    )
                ]
            )
        configmaps = named
    return _from_configmap(configmaps[0])


def _from_configmap(cm: MappingNode) -> ConfigDocument:
    notes: list[Problem] = []
    name = _name(cm)
    if name is not None and name != DEFAULT_CONFIGMAP_NAME:
        notes.append(
            Problem(
                "metadata.name",
                f"MetalLB reads the ConfigMap named {DEFAULT_CONFIGMAP_NAME!r} unless started"
                f" with --config={name}",
                name,
                line_of(child(child(cm, "metadata"), "name")),
            )
        )
    data = child(cm, "data")
    value = child(data, CONFIG_KEY)
    if is_null(value):
        raise ConfigError(
            [missing_config_key(keys_of(data), line_of(data if data is not None else cm))]
        )
    if not isinstance(value, ScalarNode):
        raise ConfigError(
            [
                Problem(
                    "data.config",
                    "data.config must be a string holding the config YAML (write `config: |`"
                    " followed by the indented config), not a nested mapping or list",
                    None,
                    line_of(value),
                )
            ]
        )
    text = str(value.value)
    if not text.strip():
        notes.append(
            Problem(
                "data.config",
                "data.config is empty: MetalLB treats this as an empty configuration (no"
                " address pools, no peers)",
                text,
                line_of(value),
            )
        )
    offset = line_of(value) if value.style == "|" else None
    return ConfigDocument(text, "configmap", offset, tuple(notes), cm)


def _name(cm: MappingNode) -> str | None:
    return scalar_text(child(child(cm, "metadata"), "name"))
