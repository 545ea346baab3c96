"""Partition and heal the layer2 owner of a running lab, with an ARP oracle in the client.

One repetition: drop the membership heartbeats (UDP port 7946, both directions) in the
owner's namespace with nft, wait until another node answers ARP for the IP, hold the
partition, remove the rule, wait until the elected owner answers again. `arpwatch` samples
who answers (a broadcast request every 50 ms, a capture in the client) during the whole run;
the verdicts come from its records only: a request answered by two MACs is a split brain.

Used by tests/lab/test_layer2_partition.py (a few repetitions) and bench/partition.py (20).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from metallb_lab import netns
from metallb_lab.lab.layout import APPS_NAMESPACE, BRIDGE, expected_owner
from metallb_lab.lab.running import Lab

HEARTBEAT_PORT = 7946
NFT_TABLE = "mlbpartition"
SAMPLE_INTERVAL = 0.05


def nft_cut(ns: netns.Netns, port: int = HEARTBEAT_PORT) -> None:
    """Drop UDP to and from `port` in `ns` (input and output), nothing else."""
    ruleset = f"""table inet {NFT_TABLE} {{
  chain input {{ type filter hook input priority -10; policy accept; udp dport {port} drop; }}
  chain output {{ type filter hook output priority -10; policy accept; udp dport {port} drop; }}
}}
"""
    subprocess.run(ns.argv(["nft", "-f", "-"]), input=ruleset, text=True, check=True, timeout=10)


def nft_heal(ns: netns.Netns) -> None:
    ns.run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)


@dataclass(frozen=True)
class Sample:
    t: float
    ip: str
    macs: tuple[str, ...] = ()
    garp: str | None = None


def read_samples(path: Path) -> list[Sample]:
    samples = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            raw = json.loads(line)
            samples.append(Sample(raw["t"], raw["ip"], tuple(raw.get("macs", ())), raw.get("garp")))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short when the watcher was stopped
    return samples


class ArpWatch:
    """The `arpwatch` harness running in the client namespace, writing to `path`."""

    def __init__(
        self,
        lab: Lab,
        ips: list[str],
        path: Path,
        duration: float,
        interval: float = SAMPLE_INTERVAL,
    ) -> None:
        self.path = path
        path.write_text("")
        argv = [sys.executable, "-m", "metallb_lab.harness.arpwatch", "--iface", BRIDGE]
        for ip in ips:
            argv += ["--ip", ip]
        argv += ["--interval", str(interval), "--duration", str(duration)]
        argv += ["--out", str(path)]
        self.proc = subprocess.Popen(
            lab.client.argv(argv),
            stdout=subprocess.DEVNULL,
            stderr=open(path.with_suffix(".log"), "wb"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
        )

    def samples(self) -> list[Sample]:
        return read_samples(self.path)

    def wait_answering(self, ip: str, mac: str, since: float, timeout: float) -> Sample | None:
        """The first request after `since` answered by exactly `mac` (None: timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"arpwatch exited: {self.path.with_suffix('.log').read_text()}")
            for s in self.samples():
                if s.t >= since and s.ip == ip and s.macs == (mac,):
                    return s
            time.sleep(0.05)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


@dataclass
class Repetition:
    owner: str
    interim: str | None
    takeover: float | None
    """Cut -> the first request answered by the interim owner alone (seconds)."""
    takeover_garp: float | None
    """Cut -> the interim owner's first gratuitous ARP."""
    heal: float | None
    """Heal -> the first request answered by the returning owner alone."""
    unanswered: int = 0
    """Requests nobody answered, cut to heal-settled."""
    margin: float | None = None
    """From the speakers' logs (not the oracle): the owner lost its lease (its responders'
    gate closed) -> the interim owner's announcement, after the cut (positive: one stopped
    before the other started)."""
    heal_margin: float | None = None
    """The same at heal: the interim owner's withdrawal -> the owner's announcement."""


@dataclass
class Result:
    repetitions: list[Repetition] = field(default_factory=list)
    requests: int = 0
    double: list[Sample] = field(default_factory=list)
    """Requests answered by two or more MACs: must stay empty."""

    def to_json(self) -> dict[str, Any]:
        return {
            "repetitions": [asdict(r) for r in self.repetitions],
            "requests": self.requests,
            "double": [asdict(s) for s in self.double],
            "takeover": summary([r.takeover for r in self.repetitions]),
            "takeover_garp": summary([r.takeover_garp for r in self.repetitions]),
            "heal": summary([r.heal for r in self.repetitions]),
            "margin": summary([r.margin for r in self.repetitions]),
            "heal_margin": summary([r.heal_margin for r in self.repetitions]),
        }


def summary(values: list[float | None]) -> dict[str, float | int]:
    found = [v for v in values if v is not None]
    if not found:
        return {"n": 0, "missing": len(values)}
    return {
        "n": len(found),
        "missing": len(values) - len(found),
        "median": statistics.median(found),
        "max": max(found),
        "min": min(found),
    }


def log_entries(path: Path) -> Iterator[tuple[float, dict[str, Any]]]:
    """(wall time, entry) of every JSON line of a speaker's log (other lines skipped)."""
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            yield datetime.fromisoformat(entry["ts"]).timestamp(), entry
        except (ValueError, KeyError, TypeError, AttributeError):
            continue


def speaker_event(lab: Lab, node: str, event: str, service: str, since: float) -> float | None:
    """Wall time of `node`'s first `event` (serviceAnnounced / serviceWithdrawn) for `service`
    (namespace/name) at or after `since`, from its JSON log."""
    for ts, entry in log_entries(lab.log(f"speaker-{node}")):
        if ts >= since and entry.get("event") == event and entry.get("service") == service:
            return ts
    return None


LEASE_COUNTS = re.compile(r"\((?P<heard>\d+)/(?P<known>\d+) heard, (?P<leased>\d+) leased\)")
"""The counts in a speaker's `membership: live=...` log line."""


def lease_lost(lab: Lab, node: str, since: float) -> float | None:
    """Wall time of `node`'s first membership view at or after `since` without its layer2
    lease (fewer than half of the known speakers acknowledging it): when its responders'
    gate closed."""
    for ts, entry in log_entries(lab.log(f"speaker-{node}")):
        msg = str(entry.get("msg", ""))
        counts = LEASE_COUNTS.search(msg) if msg.startswith("membership: live=") else None
        if ts >= since and counts and 2 * int(counts["leased"]) < int(counts["known"]):
            return ts
    return None


def _between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def run(
    lab: Lab,
    service: str,
    repetitions: int,
    workdir: Path,
    *,
    hold: float = 1.0,
    timeout: float = 5.0,
    sample_interval: float = SAMPLE_INTERVAL,
    say: Callable[[str], None] = lambda text: None,
) -> Result:
    """`repetitions` partitions and heals of `service`'s owner; the lab must be settled."""
    ip = lab.state.service_ips[service][0]
    plan = next(s for s in lab.layout.services if s.name == service)
    owner = lab.expected_owners()[service]
    assert owner is not None
    interim_expected = expected_owner(plan, ip, [n for n in lab.layout.node_names if n != owner])
    macs = lab.state.macs
    watch = ArpWatch(lab, [ip], workdir / "arpwatch.jsonl", 60 + repetitions * 10, sample_interval)
    result = Result()
    try:
        if watch.wait_answering(ip, macs[owner], time.monotonic(), 10) is None:
            raise RuntimeError(f"{owner} does not answer ARP for {ip}")
        for i in range(repetitions):
            ns = lab.node_ns(owner)
            cut, cut_wall = time.monotonic(), time.time()
            nft_cut(ns)
            try:
                assert interim_expected is not None
                taken = watch.wait_answering(ip, macs[interim_expected], cut, timeout)
                time.sleep(hold)
            finally:
                healed, healed_wall = time.monotonic(), time.time()
                nft_heal(ns)
            back = watch.wait_answering(ip, macs[owner], healed, timeout)
            time.sleep(0.5)
            samples = [s for s in watch.samples() if s.t >= cut and s.ip == ip]
            garps = [s.t for s in samples if s.garp == macs[interim_expected] and s.t < healed]
            rep = Repetition(
                owner,
                interim_expected if taken is not None else None,
                taken.t - cut if taken is not None else None,
                garps[0] - cut if garps else None,
                back.t - healed if back is not None else None,
                sum(1 for s in samples if s.garp is None and not s.macs),
            )
            key = f"{APPS_NAMESPACE}/{service}"
            rep.margin = _between(
                lease_lost(lab, owner, cut_wall),
                speaker_event(lab, interim_expected, "serviceAnnounced", key, cut_wall),
            )
            rep.heal_margin = _between(
                speaker_event(lab, interim_expected, "serviceWithdrawn", key, healed_wall),
                speaker_event(lab, owner, "serviceAnnounced", key, healed_wall),
            )
            result.repetitions.append(rep)
            say(
                f"partition #{i + 1}: {owner} cut -> {rep.interim} answers after "
                f"{_ms(rep.takeover)}, healed -> {owner} answers after {_ms(rep.heal)} "
                f"(logs: stop -> start {_ms(rep.margin)}, at heal {_ms(rep.heal_margin)})"
            )
    finally:
        watch.close()
    requests = [s for s in watch.samples() if s.garp is None]
    result.requests = len(requests)
    result.double = [s for s in requests if len(s.macs) > 1]
    return result


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value * 1000:.0f} ms"
