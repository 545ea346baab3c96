"""Lab tests run labs under their own prefix (`mlblabt<pid>x<n>`) and directory, never the
user's `mlblab` lab, and remove them afterwards whatever happened. Leftovers of crashed earlier
runs (their pid is gone) are swept at session start."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.lab import processes
from metallb_lab.lab.lifecycle import down

TEST_PREFIX = "mlblabt"
_counter = itertools.count()


def _sweep_dead_runs() -> None:
    listing = netns.run(["ip", "netns", "list"], check=False).stdout
    for name in (line.split()[0] for line in listing.splitlines() if line.strip()):
        m = re.match(rf"({TEST_PREFIX}(\d+)x\d+)-", name)
        if m and not processes.running(int(m.group(2))):
            down(Path("/nonexistent-lab-dir"), m.group(1))


@pytest.fixture(scope="session", autouse=True)
def _sweep_before_lab_tests() -> None:
    """(A session hook in this conftest would only run when pytest starts in this folder.)"""
    if netns.available() is None:
        _sweep_dead_runs()


@dataclass
class LabEnv:
    prefix: str
    directory: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "METALLB_LAB_PREFIX": self.prefix,
            "METALLB_LAB_DIR": str(self.directory),
        }

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "metallb_py", "lab", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def namespaces(self) -> list[str]:
        return netns.list_namespaces(self.prefix)


@contextlib.contextmanager
def own_lab(tmp_path: Path) -> Iterator[LabEnv]:
    """A lab prefix and directory of the test's own, taken down whatever happened (skips
    without network namespaces)."""
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    env = LabEnv(f"{TEST_PREFIX}{os.getpid()}x{next(_counter)}", tmp_path / "lab")
    try:
        yield env
    finally:
        down(env.directory, env.prefix)


@pytest.fixture
def lab_env(tmp_path: Path) -> Iterator[LabEnv]:
    with own_lab(tmp_path) as env:
        yield env
