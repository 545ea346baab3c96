"""Every reproducer of issue 12's "bad input" list, through the real command line.

Each ran past 300 s and 8.7 GB, died with a traceback (exit 1, like a refusal) or with a
segmentation fault. Now each is a clean problem with the command's documented exit code
(docs/install.md, "Exit codes"). Inputs that once exhausted the machine run in a child process
with an address-space limit and a time bound, so a regression fails one test, not the run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from metallb_py.cli import main, render_cmd

LAYER2 = "address-pools:\n- {name: a, protocol: layer2, addresses: [192.0.2.0/28]}\n"
CYCLE = "the alias *x is inside the node &x it refers to (a cycle)"


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    """`python -m metallb_py ARGS` with 2 GiB of address space and 120 s at most."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run(
        [sys.executable, "-m", "metallb_py", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, **(env or {})},
        check=False,
    )


def invoke(*args: str, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), input=stdin)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- alias bombs ------------------------------------------------------------------------------


def bomb(indent: str) -> str:
    """Seven levels of ten aliases each: 10^7 values from about 450 bytes."""
    lines = [f"{indent}a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("render",), "controller:\n  affinity:\n" + bomb("    ")),
        (
            ("config", "convert", "--from", "kontena", "--to", "configmap"),
            "kontena-network-lb:\n  tolerations:\n  - \n" + bomb("    "),
        ),
        (
            ("config", "convert", "--from", "helm", "--to", "crds"),
            "controller:\n  affinity:\n" + bomb("    "),
        ),
    ],
)
def test_alias_bomb_is_refused_at_once(tmp_path: Path, args: tuple[str, ...], text: str) -> None:
    assert len(text.encode()) < 600
    result = cli(*args, write(tmp_path, "values.yaml", text))
    assert result.returncode == 1, result.stderr
    assert "expands to more than 100000 values through YAML aliases" in result.stderr


# --- cyclic aliases ---------------------------------------------------------------------------

KONVOY_HEAD = "kind: ClusterConfiguration\napiVersion: konvoy.mesosphere.io/v1beta2\n"
POOL_HEAD = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("render",), "controller: &x {image: {}, <<: *x}\n"),
        (("render",), "controller:\n  affinity: &x {x: *x}\n"),
        (("config", "convert", "--from", "helm", "--to", "crds"), "speaker: &x {<<: *x}\n"),
        (
            ("config", "convert", "--from", "konvoy", "--to", "crds"),
            KONVOY_HEAD + "spec: &x {addons: *x}\n",
        ),
        (
            ("config", "convert", "--from", "kontena", "--to", "crds"),
            "kontena-network-lb: &x {enabled: true, peers: [*x]}\n",
        ),
        (
            ("config", "convert", "--from", "crds", "--to", "configmap"),
            POOL_HEAD
            + "metadata: &x {name: a, labels: {l: *x}}\nspec: {addresses: [192.0.2.0/28]}\n",
        ),
        (
            ("config", "convert", "--from", "configmap", "--to", "crds"),
            "kind: ConfigMap\nmetadata: &x {name: config, labels: *x}\ndata: {config: ''}\n",
        ),
        (("config", "check"), "peers: &x [{<<: *x}]\n"),
        (("plan", "--config", "CONFIG", "--services"), "kind: Service\nmetadata: &x {n: *x}\n"),
    ],
)
def test_cyclic_alias_is_a_clean_error(tmp_path: Path, args: tuple[str, ...], text: str) -> None:
    config = write(tmp_path, "config.yaml", LAYER2)
    args = tuple(config if a == "CONFIG" else a for a in args)
    result = invoke(*args, write(tmp_path, "input.yaml", text))
    assert result.exit_code == (2 if args[0] == "plan" else 1), result.output
    assert CYCLE in result.stderr


def test_render_and_config_check_say_the_same_about_a_self_merging_anchor(tmp_path: Path) -> None:
    path = write(tmp_path, "values.yaml", "controller: &x {image: {}, <<: *x}\n")
    rendered = invoke("render", path)
    checked = invoke("config", "check", path)
    assert rendered.exit_code == checked.exit_code == 1
    (render_line,) = rendered.stderr.splitlines()
    assert render_line.endswith(f"{CYCLE} (line 1)")
    assert render_line.split(": ", 3)[-1] in checked.stderr


# --- realistic slips ----------------------------------------------------------------------------

THRESHOLDS = """\
prometheus:
  prometheusRule:
    enabled: true
    addressPoolUsage:
      thresholds: [{percent: "80"}]
configInline:
  address-pools: [{name: a, protocol: layer2, addresses: [192.0.2.0/28]}]
"""


@pytest.mark.parametrize(
    "args", [("render",), ("config", "convert", "--from", "helm", "--to", "configmap")]
)
def test_quoted_threshold_percent_is_reported(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = invoke(*args, write(tmp_path, "values.yaml", THRESHOLDS))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith(
        "prometheus.prometheusRule.addressPoolUsage.thresholds[0].percent: expected an integer,"
        " got the quoted string '80': remove the quotes (line 5)"
    )


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ("{name: ~}", "metadata.name: metadata needs 'name' (line 3)"),
        ("{}", "metadata.name: metadata needs 'name' (line 3)"),
        ("{name: ''}", "metadata.name: metadata.name must not be empty (line 3)"),
        ("{name: true}", "metadata.name: expected a string, got the boolean true"),
    ],
)
def test_crd_without_a_name_is_reported(tmp_path: Path, metadata: str, reason: str) -> None:
    text = POOL_HEAD + f"metadata: {metadata}\nspec: {{addresses: [192.0.2.0/28]}}\n"
    result = invoke("config", "convert", "--from", "crds", "--to", "configmap", "-", stdin=text)
    assert result.exit_code == 1
    assert reason in result.stderr


def configmap_with_annotation(annotation: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "config",
                "namespace": "metallb-system",
                "annotations": {"convert.metallb-py.io/crds": annotation},
            },
            "data": {"config": LAYER2},
        }
    )


@pytest.mark.parametrize(
    "annotation",
    [
        "[1]",
        '{"kind": "IPAddressPool"}',
        '[{"kind": "BGPPeer"}]',
        '[{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": 5}]',
        '[{"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "p"},'
        ' "spec": {"myASN": "x"}}]',
        "[" * 100,
        "not json",
    ],
)
def test_originals_annotation_is_read_not_trusted(annotation: str) -> None:
    result = invoke(
        "config",
        "convert",
        "--from",
        "configmap",
        "--to",
        "crds",
        "-",
        stdin=configmap_with_annotation(annotation),
    )
    assert result.exit_code == 0, result.output
    assert "annotations['convert.metallb-py.io/crds'] is ignored" in result.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout) if d)
    assert kinds == ["IPAddressPool", "L2Advertisement"]


def test_pool_with_null_addresses_beside_an_advertisement_is_reported() -> None:
    """Found by the fuzz campaign (docs/limits.md): a KeyError in `convert --from crds`."""
    text = (
        POOL_HEAD + "metadata: {name: a}\nspec: {addresses: }\n---\n"
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l}\n"
    )
    result = invoke("config", "convert", "--from", "crds", "--to", "configmap", "-", stdin=text)
    assert result.exit_code == 1
    assert "[0].spec.addresses: IPAddressPool spec needs 'addresses' (line 4)" in result.stderr


@pytest.mark.parametrize("name", ["\\e", "\\x7f", "a\\x85b", "a\\u2028b"])
def test_a_name_yaml_cannot_carry_raw_stays_readable_in_the_comments(name: str) -> None:
    """Found by the property tests in CI: a dropped pool named ESC went raw into a `#` comment,
    and the converted manifest could no longer be read."""
    text = POOL_HEAD + f'metadata: {{name: "{name}"}}\nspec: {{addresses: []}}\n'
    result = invoke(
        "config", "convert", "--from", "crds", "--to", "configmap", "--allow-loss", "-", stdin=text
    )
    assert result.exit_code == 0, result.stderr
    assert "NOT CONVERTED: IPAddressPool/" in result.stdout
    checked = invoke("config", "check", "-", stdin=result.stdout)
    assert checked.exit_code == 0, checked.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "ConfigMap"


def test_five_thousand_crds_convert_and_a_repeated_one_is_named() -> None:
    docs = [
        POOL_HEAD + f"metadata: {{name: p{i}}}\nspec: {{addresses: [10.{i // 250}.{i % 250}.0/28]}}"
        for i in range(5000)
    ]
    docs.append("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}")
    text = "\n---\n".join(docs) + "\n"
    result = invoke("config", "convert", "--from", "crds", "--to", "configmap", "-", stdin=text)
    assert result.exit_code == 0, result.stderr
    (configmap,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    pools = yaml.safe_load(configmap["data"]["config"])["address-pools"]
    assert [p["name"] for p in pools] == [f"p{i}" for i in range(5000)]
    again = text + "---\n" + docs[17] + "\n"
    result = invoke("config", "convert", "--from", "crds", "--to", "configmap", "-", stdin=again)
    assert result.exit_code == 1
    assert "IPAddressPool 'p17' is defined twice" in result.stderr


# --- plan --services ----------------------------------------------------------------------------

SERVICE = "apiVersion: v1\nkind: {kind}\nmetadata: {metadata}\nspec: {{type: LoadBalancer}}\n"


def plan(tmp_path: Path, services: str) -> Any:
    config = write(tmp_path, "config.yaml", LAYER2)
    return invoke("plan", "--config", config, "--services", write(tmp_path, "s.yaml", services))


def test_int_tag_on_a_kind_is_refused(tmp_path: Path) -> None:
    result = plan(tmp_path, SERVICE.format(kind="!!int Service", metadata="{name: a}"))
    assert result.exit_code == 2
    assert "cannot read Services: kind: cannot read 'Service' as int (line 2)" in result.stderr


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("{type: !!float fast}", "spec.type: cannot read 'fast' as float (line 4)"),
        ("{type: !!null LoadBalancer}", "spec.type: cannot read 'LoadBalancer' as null (line 4)"),
    ],
)
def test_values_contradicting_their_tags_are_refused(
    tmp_path: Path, spec: str, reason: str
) -> None:
    text = SERVICE.format(kind="Service", metadata="{name: a}").replace(
        "{type: LoadBalancer}", spec
    )
    result = plan(tmp_path, text)
    assert result.exit_code == 2
    assert f"cannot read Services: {reason}" in result.stderr


@pytest.mark.parametrize(
    "spec",
    ["!!set {type: LoadBalancer}", "!!omap [{type: LoadBalancer}]", "!!binary aGk=", "!foo x"],
)
def test_other_tags_are_read_as_plain_data(tmp_path: Path, spec: str) -> None:
    """PyYAML's constructors raised KeyError, AttributeError, IndexError on some of these."""
    text = SERVICE.format(kind="Service", metadata="{name: a}").replace(
        "{type: LoadBalancer}", spec
    )
    result = plan(tmp_path, text)
    assert result.exit_code == 0, result.output
    assert "apps/a" in result.stdout or "default/a" in result.stdout


@pytest.mark.parametrize("metadata", ["{name: !!bool true}", "!!timestamp 2001-12-14"])
def test_other_tags_make_a_service_without_a_name(tmp_path: Path, metadata: str) -> None:
    result = plan(tmp_path, SERVICE.format(kind="Service", metadata=metadata))
    assert result.exit_code == 0, result.output
    assert "the Services file: Service without metadata.name" in result.stdout


@pytest.mark.parametrize(
    "text",
    [
        '{"kind": "List", "items": ' + "[" * 1000 + "]" * 1000 + "}",
        SERVICE.format(kind="Service", metadata="{name: a}").replace(
            "{type: LoadBalancer}", "{a: " * 700 + "x" + "}" * 700
        ),
        "kind: Service\nmetadata: {name: a}\nspec:\n"
        + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(600)),
    ],
    ids=["json-1000", "flow-700", "block-600"],
)
def test_deep_services_file_is_refused(tmp_path: Path, text: str) -> None:
    result = plan(tmp_path, text)
    assert result.exit_code == 2
    assert "nesting deeper than 64 levels" in result.stderr


def test_list_nested_25000_deep_is_refused_without_a_crash(tmp_path: Path) -> None:
    config = write(tmp_path, "config.yaml", LAYER2)
    services = write(tmp_path, "deep.yaml", "- " * 25_000 + "x\n")
    assert os.path.getsize(services) == 50_002
    result = cli("plan", "--config", config, "--services", services)
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "nesting deeper than 64 levels" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"kind": "Service", "metadata": {"name": "a"}}).replace('"a"', '"a\\ud800b"'),
        # A NEL makes the text go through PyYAML's Python reader, which accepts the escape.
        'kind: Service\nmetadata: {name: "a\\ud800b"}\n\x85',
    ],
    ids=["json", "yaml"],
)
def test_lone_surrogate_in_a_name_is_refused(tmp_path: Path, text: str) -> None:
    result = plan(tmp_path, text)
    assert result.exit_code == 2
    assert "cannot read Services: not YAML at line" in result.stderr


def test_names_a_terminal_cannot_show_are_escaped(tmp_path: Path) -> None:
    config = write(tmp_path, "config.yaml", LAYER2)
    services = write(tmp_path, "s.yaml", SERVICE.format(kind="Service", metadata="{name: a€}"))
    result = cli(
        "plan", "--config", config, "--services", services, env={"PYTHONIOENCODING": "latin-1"}
    )
    assert result.returncode == 0, result.stderr
    assert "default/a\\u20ac" in result.stdout


# --- numbers past Python's conversion limit -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "peers:\n- {my-asn: " + "1" * 5000 + ", peer-asn: 1, peer-address: 192.0.2.1}\n",
            "peers[0].my-asn: expected an unsigned 32-bit integer",
        ),
        (
            "peers:\n- {my-asn: !!int " + "1" * 5000 + ", peer-asn: 1, peer-address: 192.0.2.1}\n",
            "peers[0].my-asn: cannot read",
        ),
        (LAYER2.replace("/28", "/" + "1" * 5000), "is longer than 32 bits"),
        (LAYER2.replace("/28", "/" + "0" * 5000 + "28"), None),
        (
            "bgp-communities: {c: '1:" + "9" * 5000 + "'}\n",
            "bgp-communities.c: invalid community for alias 'c'",
        ),
    ],
    ids=["asn", "tagged-asn", "prefix", "prefix-leading-zeros", "community"],
)
def test_long_numbers_are_problems(tmp_path: Path, text: str, reason: str | None) -> None:
    result = invoke("config", "check", write(tmp_path, "config.yaml", text))
    if reason is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert reason in result.stderr


# --- exit codes ---------------------------------------------------------------------------------


def test_internal_error_exits_70_in_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(render_cmd, "render_values", broken)
    values = write(tmp_path, "values.yaml", "{}\n")
    result = CliRunner().invoke(main, ["render", values])
    assert result.exit_code == 70
    assert result.stderr == (
        "metallb-py: internal error: RuntimeError: a bug (run with --debug for the traceback);"
        " please report it\n"
    )
    debug = CliRunner().invoke(main, ["--debug", "render", values])
    assert debug.exit_code == 70
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RuntimeError: a bug" in debug.stderr
    assert debug.stderr.rstrip().endswith("please report it")


def test_refusal_and_usage_keep_their_codes(tmp_path: Path) -> None:
    assert invoke("config", "check", write(tmp_path, "x.yaml", "peers: 5\n")).exit_code == 1
    assert invoke("config", "check", str(tmp_path / "missing.yaml")).exit_code == 2
    assert invoke("render", str(tmp_path / "missing.yaml")).exit_code == 2
    assert invoke("render", "--format", "xml", "x").exit_code == 2


def test_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    values = write(tmp_path, "values.yaml", "{}\n")
    blocker = write(tmp_path, "file", "")
    result = invoke("render", values, "-o", str(Path(blocker) / "out"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
