"""Not collected by the suite (no `test_` prefix): tests/lab/test_stopping.py runs it in a pytest
of its own and stops that pytest with SIGTERM while the test holds a `topo` namespace."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from metallb_lab import netns

READY = "METALLB_VICTIM_READY"


@pytest.mark.skipif(READY not in os.environ, reason="run by tests/lab/test_stopping.py only")
def test_holds_a_namespace_until_stopped(topo: netns.Topology) -> None:
    ns = topo.add_ns("victim")
    topo.spawn(ns, ["sleep", "60"])
    Path(os.environ[READY]).write_text(ns.name)
    time.sleep(60)
