"""`metallb-py config check` through click's runner, and once as the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from metallb_py.cli import main

VALID = """\
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 192.0.2.1
address-pools:
- name: public
  protocol: bgp
  addresses: [198.51.100.0/24]
- name: lan
  protocol: layer2
  addresses: [192.0.2.240/28]
"""

INVALID = """\
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: router.example
  hold-time: 90
address-pools:
- name: lan
  protocol: layer2
  addresses: [192.0.2.240/28, 192.0.2.241/32]
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
""" + "".join(f"    {line}\n" for line in INVALID.splitlines())


def run(args: list[str], stdin: str | bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str | bytes, name: str = "config.yaml") -> str:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return str(path)

    return _write


def test_valid_config_exit_0_with_summary(write) -> None:
    code, out, err = run(["config", "check", write(VALID)])
    assert (code, out, err) == (0, "valid: 2 pools (272 addresses), 1 peer\n", "")


def test_invalid_config_exit_1_every_problem_on_stderr(write) -> None:
    path = write(INVALID)
    code, out, err = run(["config", "check", path])
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{path}: peers[0].peer-address: invalid peer IP: 'router.example' is not an IP address"
        " (hostnames are not allowed) (line 4)",
        f"{path}: peers[0].hold-time: invalid hold-time '90': time: missing unit in duration"
        ' "90" (a duration needs a unit: write 90s for seconds) (line 5)',
        f"{path}: address-pools[0].addresses[1]: CIDR 192.0.2.241/32 overlaps with already"
        " defined CIDR 192.0.2.240/28 (pool 'lan', address-pools[0].addresses[0]) (line 9)",
        "invalid: 3 problems",
    ]


def test_json_output(write) -> None:
    path = write(INVALID)
    code, out, err = run(["config", "check", "--output", "json", path])
    assert code == 1 and err == ""
    report = json.loads(out)
    assert report["valid"] is False and report["path"] == path and report["bgp_type"] == "native"
    assert report["problems"][0] == {
        "path": "peers[0].peer-address",
        "reason": "invalid peer IP: 'router.example' is not an IP address (hostnames are not allowed)",
        "value": "router.example",
        "line": 4,
    }
    assert [p["path"] for p in report["problems"]] == [
        "peers[0].peer-address",
        "peers[0].hold-time",
        "address-pools[0].addresses[1]",
    ]
    code, out, _ = run(["config", "check", "--output", "json", write(VALID, "ok.yaml")])
    report = json.loads(out)
    assert code == 0 and report["valid"] is True and report["problems"] == []
    assert report["summary"] == {
        "pools": 2,
        "addresses": 272,
        "peers": 1,
        "bfd_profiles": 0,
        "text": "2 pools (272 addresses), 1 peer",
    }


def test_configmap_problems_point_at_manifest_lines(write) -> None:
    code, _, err = run(["config", "check", write(CONFIGMAP)])
    assert code == 1
    lines = err.splitlines()
    assert lines[0].endswith("(line 11)")  # line 4 of the config, inside the block scalar
    assert CONFIGMAP.splitlines()[10].strip() == "peer-address: router.example"


def test_stdin(write) -> None:
    code, out, _ = run(["config", "check", "-"], stdin=VALID)
    assert (code, out) == (0, "valid: 2 pools (272 addresses), 1 peer\n")
    code, _, err = run(["config", "check", "-"], stdin=INVALID)
    assert code == 1 and err.startswith("<stdin>: peers[0].peer-address: ")


def test_bgp_type_option(write) -> None:
    example = (Path(__file__).parent / "spec_1_12_example.yaml").read_text()
    path = write(example)
    assert run(["config", "check", "--bgp-type", "frr", path])[:2] == (
        0,
        "valid: 2 pools (539 addresses), 1 peer\n",
    )
    code, _, err = run(["config", "check", path])
    assert code == 1 and "keepalive-time needs the FRR BGP implementation" in err
    code, _, err = run(["config", "check", "--bgp-type", "gobgp", path])
    assert code == 2 and "Invalid value for '--bgp-type'" in err


def test_warnings_and_notes_go_to_stderr_on_success(write) -> None:
    code, out, err = run(
        ["config", "check", write(VALID.replace("192.0.2.240/28", "192.0.2.241/28"))]
    )
    assert code == 0 and out.startswith("valid: ")
    assert "warning: address-pools[1].addresses[0]: 192.0.2.241/28 has host bits set" in err
    code, out, err = run(
        [
            "config",
            "check",
            write("kind: ConfigMap\nmetadata: {name: config}\ndata: {config: ''}\n"),
        ]
    )
    assert (code, out) == (0, "valid: 0 pools (0 addresses), 0 peers\n")
    assert "data.config is empty" in err
    code, out, err = run(["config", "check", write("kind: ConfigMap\nmetadata: {name: config}\n")])
    assert code == 1 and "data.config: the ConfigMap has no `config` key" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "the input is empty", id="empty"),
        pytest.param(b"\n  \n", "the input is empty", id="blank"),
        pytest.param(b"peers: [\n", "could not parse config", id="not-yaml"),
        pytest.param(b"- just\n- a list\n", "must be a YAML mapping", id="list"),
        pytest.param(b"just a sentence\n", "must be a YAML mapping", id="string"),
        pytest.param(b"\xff\xfe\x00binary", "not UTF-8 text", id="binary"),
        pytest.param(b"kind: IPAddressPool\n", "MetalLB v0.13+", id="crd"),
        pytest.param(b"# " + b"x" * (10 * 1024 * 1024) + b"\n", "at most 1 MiB", id="10MB"),
        pytest.param(
            b"address-pools:\n" + b"- {name: p, protocol: layer2, addresses: [bad]}\n" * 25000,
            "a ConfigMap holds at most 1 MiB",
            id="1.2MB",
        ),
    ],
)
def test_bad_input_exit_1_with_a_message_not_a_traceback(
    write, content: bytes, message: str
) -> None:
    code, out, err = run(["config", "check", write(content)])
    assert code == 1, (out, err)
    assert message in err
    assert "Traceback" not in out + err


def test_unreadable_input_exit_2(tmp_path: Path) -> None:
    code, _, err = run(["config", "check", str(tmp_path / "missing.yaml")])
    assert code == 2 and "cannot read: No such file or directory" in err
    code, _, err = run(["config", "check", str(tmp_path)])
    assert code == 2 and "cannot read" in err


def test_usage_errors_exit_2() -> None:
    assert run(["config", "check"])[0] == 2
    assert run(["config", "check", "--output", "xml", "x"])[0] == 2
    assert run(["config", "nope"])[0] == 2


@pytest.mark.parametrize("args", [["--help"], ["config", "--help"], ["config", "check", "--help"]])
def test_help(args: list[str]) -> None:
    code, out, _ = run(args)
    assert code == 0 and "Usage:" in out


def test_installed_console_script(tmp_path: Path) -> None:
    script = shutil.which("metallb-py")
    assert script is not None, "metallb-py is not installed (pip install -e .)"
    manifest = tmp_path / "configmap.yaml"
    manifest.write_text(
        CONFIGMAP.replace("router.example", "192.0.2.1")
        .replace("90\n", "90s\n")
        .replace(", 192.0.2.241/32", "")
    )
    done = subprocess.run(
        [script, "config", "check", str(manifest)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "valid: 1 pool (16 addresses), 1 peer\n",
        "",
    )
    done = subprocess.run(
        [script, "config", "check", "--output", "json", "-"],
        check=False,
        input=INVALID,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert len(json.loads(done.stdout)["problems"]) == 3
