"""Issue 14 acceptance: partition and heal the layer2 owner of a running lab (3 nodes,
controller, speakers with membership), heartbeats dropped with nft in the owner's namespace.

An ARP sampler in the client (scapy, a broadcast request every 50 ms, a capture of the
replies) is the oracle: no request may be answered by two MACs, the interim owner must answer
within the failover budget after the cut, and the elected owner again after the heal.
`METALLB_PARTITION_REPETITIONS` sets the number of repetitions (default 3 here;
`python -m bench.partition --repetitions 20` runs the full acceptance and prints the numbers).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.harness import partition
from metallb_lab.lab.lifecycle import down, up
from metallb_lab.lab.running import Lab

from .conftest import TEST_PREFIX

pytestmark = pytest.mark.netns

REPETITIONS = int(os.environ.get("METALLB_PARTITION_REPETITIONS", "3"))
TAKEOVER_BUDGET = 0.5
"""Per repetition, cut -> interim owner answering, generous for a loaded CI machine (the
membership timers allow ~0.15 s plus one 50 ms sample; docs/benchmarks.md has the medians)."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    prefix = f"{TEST_PREFIX}{os.getpid()}x8"
    directory: Path = tmp_path_factory.mktemp("lab")
    try:
        yield up(3, directory=directory, prefix=prefix, tools=("curl",))
    finally:
        report = down(directory, prefix)
        assert report.clean, report


def test_partition_and_heal_never_two_answers(lab: Lab, tmp_path: Path) -> None:
    lab.wait_settled(60)
    result = partition.run(lab, "web", REPETITIONS, tmp_path, say=print)
    print(result.to_json())
    assert result.requests > REPETITIONS * 20, "the sampler did not run"
    assert result.double == [], result.double
    takeovers = [r.takeover for r in result.repetitions]
    heals = [r.heal for r in result.repetitions]
    assert all(t is not None and t <= TAKEOVER_BUDGET for t in takeovers), takeovers
    assert all(h is not None and h <= TAKEOVER_BUDGET for h in heals), heals
    assert statistics.median(t for t in takeovers if t is not None) <= 0.3, takeovers
