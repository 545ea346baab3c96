"""Finding the config in raw YAML or a ConfigMap manifest (docs/config.md)."""

from __future__ import annotations

from textwrap import dedent

import pytest

from metallb_py.config import (
    Config,
    ConfigError,
    load_config_document,
    parse_config,
    read_config_document,
)

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.0.2.240/28
"""


def test_raw_config_passes_through() -> None:
    text = "peers: []\n"
    doc = read_config_document(text)
    assert (doc.text, doc.source, doc.line_offset, doc.notes) == (text, "config", 0, ())
    assert load_config_document(text) == text


def test_configmap_data_config_is_extracted_with_its_line_offset() -> None:
    doc = read_config_document(CONFIGMAP)
    assert doc.source == "configmap"
    assert doc.text.startswith("address-pools:\n- name: default\n")
    assert parse_config(doc.text).pools[0].name == "default"
    # config line 5 ("- 192.0.2.240/28") is line 12 of the manifest
    assert doc.input_line(5) == 12
    assert CONFIGMAP.splitlines()[11].strip() == "- 192.0.2.240/28"


def test_quoted_config_value_has_no_line_mapping() -> None:
    doc = read_config_document('kind: ConfigMap\ndata:\n  config: "peers: []"\n')
    assert doc.text == "peers: []"
    assert doc.input_line(1) is None


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("kind: ConfigMap\nmetadata: {name: config}\n", "(it has no data)"),
        (
            "kind: ConfigMap\nmetadata: {name: config}\ndata: {conifg: x}\n",
            "(its data keys: conifg)",
        ),
        (
            "kind: ConfigMap\nmetadata: {name: config}\ndata: {config: }\n",
            "(its data keys: config)",
        ),
    ],
)
def test_configmap_without_config_key_is_refused(text: str, keys: str) -> None:
    """Deliberate difference: v0.12 reads it as the empty config, hiding a misspelt key."""
    with pytest.raises(ConfigError) as err:
        read_config_document(text)
    (problem,) = err.value.problems
    assert problem.path == "data.config"
    assert "has no `config` key" in problem.reason and keys in problem.reason


def test_explicitly_empty_config_is_the_valid_empty_config() -> None:
    doc = read_config_document("kind: ConfigMap\nmetadata: {name: config}\ndata: {config: ''}\n")
    assert parse_config(doc.text) == Config()
    (problem,) = doc.notes
    assert "data.config is empty" in problem.reason and "empty configuration" in problem.reason


def test_unusual_configmap_name_is_noted() -> None:
    doc = read_config_document(CONFIGMAP.replace("name: config", "name: metallb"))
    assert [n.path for n in doc.notes] == ["metadata.name"]
    assert "--config=metallb" in doc.notes[0].reason


def test_multi_document_manifest_picks_the_configmap() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n---\n" + CONFIGMAP
    doc = read_config_document(text)
    assert doc.source == "configmap" and doc.input_line(1) == 12


def test_several_configmaps_prefer_the_one_named_config() -> None:
    other = CONFIGMAP.replace("name: config", "name: other").replace("192.0.2.240", "198.51.100.0")
    doc = read_config_document(other + "---\n" + CONFIGMAP)
    assert "192.0.2.240/28" in doc.text
    with pytest.raises(ConfigError, match="2 ConfigMaps in the input"):
        read_config_document(other + "---\n" + other)


def test_config_as_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        read_config_document("kind: ConfigMap\ndata:\n  config:\n    peers: []\n")
    assert "data.config must be a string" in info.value.problems[0].reason


@pytest.mark.parametrize(
    "text",
    [
        dedent(
            """\
            apiVersion: metallb.io/v1beta1
            kind: IPAddressPool
            metadata: {name: first-pool, namespace: metallb-system}
            spec:
              addresses: [192.0.2.10-192.0.2.20]
            """
        ),
        "kind: BGPPeer\n---\nkind: L2Advertisement\n",
    ],
)
def test_v013_custom_resources_are_explained(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_config_document(text)
    assert "MetalLB v0.13+" in info.value.problems[0].reason


def test_not_yaml_is_left_to_the_parser() -> None:
    doc = read_config_document("peers: [\n")
    assert doc.source == "config"
    with pytest.raises(ConfigError, match="could not parse config"):
        parse_config(doc.text)
