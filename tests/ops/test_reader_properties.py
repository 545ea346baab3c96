"""Property tests of the readers of addon values, custom resources and ConfigMaps: whatever the
input, the documented result or error (docs/config.md, limits), within a time bound per input.

Surfaces and their documented errors:
- Helm / Konvoy / Kontena values: `values.render` and `convert.convert(text, FORMAT, ...)`
  return manifests or raise ConfigError;
- MetalLB v0.13 custom resources: `convert.convert(text, "crds", ...)`, ConfigError;
- ConfigMap objects (what the API server hands the controller and speaker): `load_configmap`
  never raises, it returns the config or problems; a ConfigMap manifest given to
  `read_config_document` gives the config text or ConfigError.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.addons import convert, crds, helm, kontena, konvoy, values
from metallb_py.config import BgpType, ConfigError, parse_config, read_config_document
from metallb_py.config.decode import TYPED_STR, List, Struct
from metallb_py.k8s.configmap import ConfigLoad, load_configmap
from tests.config.yaml_mutations import bounded, dump, junk, mutated, seeds, shaped

pytestmark = pytest.mark.slow

HELM_SEEDS = seeds("config-examples/helm-*.yaml", "tests/controller/data/blog-configmap.yaml")
KONVOY_SEEDS = seeds("config-examples/konvoy-*.yaml", "tests/config/seeds/konvoy_*.yaml")
KONTENA_SEEDS = seeds("config-examples/kontena-*.yaml", "tests/config/seeds/kontena_*.yaml")
CRD_SEEDS = seeds("config-examples/crds-*.yaml", "tests/config/seeds/v013_*.yaml")
CONFIGMAP_SEEDS = seeds("config-examples/configmap-*.yaml", "tests/config/seeds/blog_*.yaml")
KONVOY_ADDON = Struct(
    "cluster",
    {
        "kind": TYPED_STR,
        "apiVersion": TYPED_STR,
        "spec": Struct(
            "spec",
            {
                "addons": List(
                    Struct(
                        "repo",
                        {
                            "addonsList": List(
                                Struct(
                                    "addon",
                                    {"name": TYPED_STR, "enabled": TYPED_STR, "values": TYPED_STR},
                                )
                            )
                        },
                    )
                )
            },
        ),
    },
)


def values_surface(text: str, fmt: str) -> None:
    """`metallb-py render` and `config convert --from FMT`: a result or ConfigError."""
    try:
        rendered = values.render(text, fmt)
    except ConfigError as exc:
        assert exc.problems and all(p.reason for p in exc.problems)
    else:
        for f in rendered.files:
            f.text()
    for target in convert.TARGETS if fmt != "auto" else ():
        try:
            convert.convert(text, fmt, target)
        except ConfigError as exc:
            assert exc.problems


def crds_surface(text: str) -> None:
    for target in convert.TARGETS:
        try:
            result = convert.convert(text, "crds", target)
        except ConfigError as exc:
            assert exc.problems
            continue
        if target == "configmap":
            # What was written is a ConfigMap whose config is valid (FRR: BFD profiles allowed).
            parse_config(read_config_document(result.text).text, BgpType.FRR)


@bounded(300)
@given(doc=shaped(helm.HELM_VALUES), flow=st.sampled_from([None, True, False]))
def test_helm_values_shaped_like_the_chart(doc: Any, flow: bool | None) -> None:
    values_surface(dump(doc, flow), "helm")


@bounded(300)
@given(text=mutated(HELM_SEEDS), fmt=st.sampled_from(["helm", "auto"]))
def test_helm_values_mutated(text: str, fmt: str) -> None:
    values_surface(text, fmt)


@bounded(200)
@given(doc=shaped(KONVOY_ADDON), helm_values=shaped(helm.HELM_VALUES))
def test_konvoy_clusters_shaped_like_one(doc: Any, helm_values: Any) -> None:
    if isinstance(doc, dict):
        doc["kind"], doc["apiVersion"] = "ClusterConfiguration", konvoy.KONVOY_API_VERSIONS[1]
    addons = [{"addonsList": [{"name": "metallb", "values": dump(helm_values)}]}]
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
        doc["spec"].setdefault("addons", addons)
    values_surface(dump(doc), "konvoy")


@bounded(300)
@given(text=mutated(KONVOY_SEEDS))
def test_konvoy_clusters_mutated(text: str) -> None:
    values_surface(text, "konvoy")


@bounded(300)
@given(block=junk, config=junk, under_addons=st.booleans())
def test_kontena_values_of_any_shape(block: Any, config: Any, under_addons: bool) -> None:
    if isinstance(block, dict):
        block["address_pools"] = config
    doc = {kontena.KONTENA_KEY: block}
    values_surface(dump({"addons": doc} if under_addons else doc), "kontena")


@bounded(300)
@given(text=mutated(KONTENA_SEEDS))
def test_kontena_values_mutated(text: str) -> None:
    values_surface(text, "kontena")


@st.composite
def crd_documents(draw: st.DrawFn) -> str:
    objects = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(crds.SPECS)))
        version = draw(st.sampled_from([*crds.VERSIONS[kind], "v1alpha1"]))
        obj = {
            "apiVersion": f"{crds.GROUP}/{version}",
            "kind": kind,
            "metadata": draw(shaped(crds._METADATA)),
            "spec": draw(shaped(crds.SPECS[kind])),
        }
        objects.append(obj)
    if draw(st.booleans()):
        return dump({"apiVersion": "v1", "kind": "List", "items": objects})
    return "---\n".join(dump(o) for o in objects)


@bounded(400)
@given(text=crd_documents())
def test_crds_shaped_like_metallb_objects(text: str) -> None:
    crds_surface(text)


@bounded(400)
@given(text=mutated(CRD_SEEDS))
def test_crds_mutated(text: str) -> None:
    crds_surface(text)


@bounded(300)
@given(
    data=st.none() | junk | st.dictionaries(st.sampled_from(["config", "conifg"]), junk),
    configmap=junk,
)
def test_configmap_objects_of_any_shape(data: Any, configmap: Any) -> None:
    if isinstance(configmap, dict):
        configmap["data"] = data
    load = load_configmap(configmap, BgpType.NATIVE)
    assert isinstance(load, ConfigLoad)
    assert (load.config is None) == bool(load.problems) or load.missing
    load.summary()


@bounded(300)
@given(text=mutated(CONFIGMAP_SEEDS))
def test_configmap_manifests_mutated(text: str) -> None:
    try:
        document = read_config_document(text)
    except ConfigError as exc:
        assert exc.problems
        return
    try:
        parse_config(document.text)
    except ConfigError as exc:
        assert exc.problems
    configmap = {"data": {"config": document.text}}
    load_configmap(configmap, BgpType.FRR)
