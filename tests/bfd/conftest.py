"""Fixtures for BFD against FRR's bfdd: a router and a node namespace on one veth
(`PeeringLink`), and a work directory user frr can reach (zebra and bfdd drop privileges to
it, and pytest's tmp_path is closed to other users)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.routers import FRR_BFDD, FRR_ZEBRA, PeeringLink, daemons_available


@pytest.fixture
def frr_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix=f"mlbt-{os.getpid()}-bfd-", dir="/tmp"))
    os.chmod(directory, 0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def link(topo: netns.Topology) -> PeeringLink:
    reason = daemons_available()
    if reason is None and not (os.path.exists(FRR_BFDD) and os.path.exists(FRR_ZEBRA)):
        reason = "missing: FRR bfdd/zebra"
    if reason is not None:
        pytest.skip(reason)
    return PeeringLink.create(topo)
