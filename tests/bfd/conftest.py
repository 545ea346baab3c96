"""Fixtures for BFD against FRR's bfdd: a router and a node namespace on one veth
(`PeeringLink`), a work directory user frr can reach (zebra and bfdd drop privileges to
it, and pytest's tmp_path is closed to other users), and `log_times` (when the speaker logged
what)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class LogTimes(logging.Handler):
    """When each message containing a watched text was logged (monotonic seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((time.monotonic(), record.getMessage()))

    def first(self, text: str, since: float) -> float | None:
        return next((t for t, msg in self.seen if t >= since and text in msg), None)


@pytest.fixture
def log_times() -> Any:
    handler = LogTimes()
    loggers = [logging.getLogger(n) for n in ("metallb.bfd", "metallb_py.bgp.session")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)
