"""Shared fixtures. Namespace tests skip (with the reason) where root or iproute2 is missing."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from metallb_py.testing import netns

_counter = itertools.count()


def pytest_sessionstart(session: pytest.Session) -> None:
    if netns.available() is None:
        netns.sweep()


@pytest.fixture
def topo() -> Iterator[netns.Topology]:
    """A fresh, empty topology; everything in it is removed after the test, pass or fail."""
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    t = netns.Topology(tag=f"{os.getpid()}x{next(_counter)}")
    try:
        yield t
    finally:
        t.close()
