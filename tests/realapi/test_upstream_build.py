"""Cheap checks of the upstream MetalLB build (`scripts/build-upstream-metallb.sh`) and of the
pure helpers of the real-server benchmarks; no network, no compilation. The binaries' checks
are skipped when they are not built (the build is not part of setup.sh: docs/upstream.md)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path

import pytest

from bench.realapi_common import POOL, UPSTREAM_DIR, log_time, status_ip

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-upstream-metallb.sh"

# A go.mod of our own making with the shapes a release's go.mod can have.
GO_MOD = """module example.org/thing

go 1.16

require (
\texample.org/a v1.0.0
)

replace (
\tk8s.io/api => k8s.io/api v0.20.2
\tk8s.io/client-go => k8s.io/client-go v0.20.2
\texample.org/local => ../local
)

replace example.org/one => example.org/fork v1.2.3
"""


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=10)


def test_replace_lines_come_from_the_downloaded_go_mod(tmp_path: Path) -> None:
    gomod = tmp_path / "go.mod"
    gomod.write_text(GO_MOD)
    done = subprocess.run(
        ["bash", str(SCRIPT), "--print-replaces", str(gomod)],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert done.stdout.split() == [
        "k8s.io/api=k8s.io/api@v0.20.2",
        "k8s.io/client-go=k8s.io/client-go@v0.20.2",
        "example.org/one=example.org/fork@v1.2.3",
    ]


def test_no_upstream_text_in_the_script() -> None:
    """The replace lines are generated at build time, never copied into the repository."""
    text = SCRIPT.read_text()
    assert "k8s.io/api =>" not in text
    assert "v0.20.2" not in text


def test_status_ips_of_the_floor_are_in_the_pool() -> None:
    pool = ipaddress.ip_network(POOL)
    ips = [ipaddress.ip_address(status_ip(i)) for i in (1, 255, 10_000)]
    assert all(ip in pool for ip in ips)
    assert [int(ip) - int(pool.network_address) for ip in ips] == [1, 255, 10_000]


def test_log_time_reads_nanoseconds_and_microseconds() -> None:
    # 2021-01-01T00:00:00Z is 1609459200 (date -u -d 2021-01-01 +%s).
    assert log_time({"ts": "2021-01-01T00:00:01.500000001Z"}) == pytest.approx(
        1609459201.5, abs=1e-6
    )
    assert log_time({"ts": "2021-01-01T00:00:00.25Z"}) == pytest.approx(1609459200.25)
    assert log_time({"ts": "2021-01-01T00:00:00Z"}) == 1609459200


def _built() -> Path:
    if not all((UPSTREAM_DIR / b).exists() for b in ("controller", "speaker")):
        pytest.skip("upstream MetalLB not built (bash scripts/build-upstream-metallb.sh)")
    return UPSTREAM_DIR


def test_a_second_run_reuses_the_binaries() -> None:
    _built()
    start = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=True
    )
    assert Path(done.stdout.strip()) == UPSTREAM_DIR
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("binary", ["controller", "speaker"])
def test_the_binaries_are_metallb_0_12_1(binary: str, tmp_path: Path) -> None:
    """Started without a cluster, each logs its version line first and then gives up."""
    directory = _built()
    done = subprocess.run(
        [
            str(directory / binary),
            "--kubeconfig",
            str(tmp_path / "missing"),
            "--namespace",
            "metallb-system",
            "--node-name" if binary == "speaker" else "--log-level",
            "node-1" if binary == "speaker" else "info",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    first = json.loads((done.stdout + done.stderr).splitlines()[0])
    assert first["version"] == "0.12.1"
    assert first["msg"].startswith(f"MetalLB {binary} starting version 0.12.1")
