"""Shared fixtures. Namespace tests skip (with the reason) where root or iproute2 is missing."""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections.abc import Iterator

import pytest
from hypothesis import settings

from metallb_lab import netns

# Property tests explore new random examples on every run by default. `scripts/test.sh` (what CI
# runs) selects "ci": the same examples every run, so a red CI always points at a change, never
# at the luck of the draw; exploring is for developers (`pytest`, or HYPOTHESIS_PROFILE=explore).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))

_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a `timeout`, a CI cancel) ends the run as Ctrl-C does: pytest then tears the
    # fixtures down, so `topo`, the lab fixtures and the API servers clean up after themselves.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_sessionstart(session: pytest.Session) -> None:
    if netns.available() is None:
        netns.sweep()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Namespaces of this run that no fixture removed (a test that built a Topology of its own
    and was interrupted half-way)."""
    if netns.available() is None:
        mine = re.compile(rf"{netns.DEFAULT_PREFIX}-{os.getpid()}(\D|$)")
        for name in netns.list_namespaces():
            if mine.match(name):
                netns.delete_namespace(name)


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
