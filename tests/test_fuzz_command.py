"""`python -m bench.fuzz`: every surface survives a short campaign; the harness itself finds a
crash, a hang and a dead worker in surfaces made for that, writes reproducers, and stops
cleanly on SIGTERM leaving no worker behind."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import fuzz

REPO = Path(__file__).resolve().parent.parent
WIRE = ["bgp", "bgp-session", "arp", "ndp"]
READERS = [
    "config",
    "configmap",
    "values-helm",
    "values-konvoy",
    "values-kontena",
    "crds",
    "services",
]


def run_command(surface: str, out: Path, inputs: int = 300) -> dict:
    bounds = ["--max-seconds", "120", "--hang-seconds", "10", "--out", str(out), "--json"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fuzz",
            surface,
            "--inputs",
            str(inputs),
            "--seed",
            "3",
            *bounds,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    summary_line = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summary_line, proc.stdout + proc.stderr
    summary: dict = json.loads(summary_line[-1])
    assert proc.returncode == (1 if _findings(summary) else 0), proc.stdout
    return summary


def _findings(summary: dict) -> int:
    return sum(summary["crashes"].values()) + summary["hangs"] + summary["slow"] + summary["memory"]


@pytest.mark.parametrize("surface", WIRE)
def test_wire_surfaces_survive_a_short_campaign(surface: str, tmp_path: Path) -> None:
    summary = run_command(surface, tmp_path)
    assert summary["inputs"] == 300
    assert summary["crashes"] == {} and summary["hangs"] == 0 and summary["slow"] == 0
    assert summary["memory"] == 0


@pytest.mark.parametrize("surface", READERS)
def test_reader_surfaces_survive_a_short_campaign(surface: str, tmp_path: Path) -> None:
    summary = run_command(surface, tmp_path)
    assert summary["inputs"] == 300
    assert _findings(summary) == 0, summary


# --- the harness itself ----------------------------------------------------------------------


def _fake(run, seeds: list[bytes]) -> fuzz.Surface:
    return fuzz.Surface(run, (KeyError,), lambda: seeds, "bytes")


def _behave(data: bytes) -> None:
    if data.startswith(b"hang"):
        time.sleep(60)
    if data.startswith(b"crash"):
        raise IndexError("boom")
    if data.startswith(b"die"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(b"refuse"):
        raise KeyError("documented")


def args(surface: str, out: Path, inputs: int) -> argparse.Namespace:
    return argparse.Namespace(
        surface=surface,
        inputs=inputs,
        seed=1,
        max_seconds=60.0,
        hang_seconds=1.0,
        memory_mb=2048,
        peak_mb=1024,
        out=str(out),
    )


def test_the_harness_reports_crashes_hangs_deaths_and_writes_reproducers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = [b"hang", b"crash", b"die", b"refuse", b"fine"]
    monkeypatch.setitem(fuzz.SURFACES, "fake", lambda: _fake(_behave, seeds))
    found = fuzz.campaign(args("fake", tmp_path, inputs=10))  # the 5 seeds, then 5 mutations
    assert found.inputs == 10
    assert found.hangs >= 1
    assert any(kind.startswith("IndexError at test_fuzz_command.py:") for kind in found.crashes)
    assert any(kind.startswith("worker died (exit -11)") for kind in found.crashes)
    assert found.refused >= 1
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "hang-0.input" in written
    assert any(n.startswith("IndexError-at-test-fuzz-command-py-") for n in written)
    assert (tmp_path / "hang-0.input").read_bytes() == b"hang"


def test_sigterm_stops_the_campaign_and_its_worker(tmp_path: Path) -> None:
    out = tmp_path / "findings"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fuzz", "bgp", "--inputs", "100000000", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "stopped by signal 15" in output
    assert "/s, crashes 0" in output  # progress lines while it ran
    assert not _processes_with(str(out)), "a worker outlived the campaign"


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found
