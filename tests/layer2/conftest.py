"""A small LAN for the layer2 tests: a client namespace with a bridge, node namespaces plugged into
it, and the layer2 engine running in a node as `python -m metallb_lab.harness.layer2` (driven over stdin)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metallb_lab import netns

REPO = Path(__file__).resolve().parents[2]


class Layer2Process:
    """The debug entry point in a namespace; `cmd` sends one line and returns its JSON answer."""

    def __init__(
        self, topo: netns.Topology, ns: netns.Netns, log: Path, *args: str, timeout: float = 15
    ) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            ns.argv([sys.executable, "-m", "metallb_lab.harness.layer2", "-v", *args]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        topo.processes.append(self.proc)
        self._buffer = b""
        self.ready = self._read_line(timeout)

    def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the layer2 process; log:\n{self.stderr()}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"layer2 process exited; log:\n{self.stderr()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        result: dict[str, Any] = json.loads(line)
        return result

    def cmd(self, line: str, timeout: float = 15) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        result = self._read_line(timeout)
        assert result.get("ok"), result
        return result

    def stats(self) -> dict[str, Any]:
        return self.cmd("stats")

    def state(self) -> dict[str, Any]:
        return self.cmd("state")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        self._stderr.close()
        return code


REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")
TARGET_LLA = re.compile(r"Target link-layer address: ([0-9A-Fa-f:]{17})")


@dataclass
class Lan:
    topo: netns.Topology
    tmp: Path
    client: netns.Netns
    nodes: list[netns.Netns] = field(default_factory=list)

    def mac(self, ns: netns.Netns, ifname: str = "eth0") -> str:
        link = json.loads(ns.ip("-j", "link", "show", ifname).stdout)
        return str(link[0]["address"]).lower()

    def speaker(self, node: netns.Netns, *args: str) -> Layer2Process:
        log = self.tmp / f"{node.name}-{len(list(self.tmp.iterdir()))}.log"
        return Layer2Process(self.topo, node, log, *args)

    def arping(
        self,
        ip: str,
        *,
        count: int = 2,
        wait: float | None = None,
        dev: str = "br0",
        source: str | None = None,
        broadcast: bool = False,
    ) -> list[str]:
        """MACs of every reply (lower case), in order. Probes go out once a second."""
        wait = count + 1 if wait is None else wait
        argv = ["arping", "-c", str(count), "-w", str(wait), "-I", dev]
        if broadcast:
            argv.append("-b")
        if source:
            argv += ["-s", source]
        out = self.client.run([*argv, ip], check=False, timeout=wait + 10).stdout
        return [mac.lower() for addr, mac in REPLY.findall(out) if addr == ip]

    def ndisc(self, ip: str, dev: str = "br0", tries: int = 2, wait_ms: int = 500) -> list[str]:
        """MACs of every advertisement for `ip` (`ndisc6 -m` waits for all of them; one per
        answering node and try, plus any unsolicited NA for `ip` that arrives meanwhile)."""
        out = self.client.run(
            ["ndisc6", "-m", "-n", "-r", str(tries), "-w", str(wait_ms), ip, dev],
            check=False,
            timeout=tries * wait_ms / 1000 + 10,
        ).stdout
        return [mac.lower() for mac in TARGET_LLA.findall(out)]


def build_lan(topo: netns.Topology, tmp: Path, nodes: int) -> Lan:
    """Client `c` with br0 = 192.0.2.1/24 + 2001:db8::1/64; node i has eth0 = .1i / ::1i."""
    client = topo.add_ns("c")
    lan = Lan(topo, tmp, client)
    ports = []
    for i in range(1, nodes + 1):
        node = topo.add_ns(f"n{i}")
        topo.veth(node, "eth0", client, f"p{i}")
        topo.addr(node, "eth0", f"192.0.2.{10 + i}/24")
        topo.addr(node, "eth0", f"2001:db8::{10 + i}/64")
        lan.nodes.append(node)
        ports.append(f"p{i}")
    topo.bridge(client, "br0", ports)
    topo.addr(client, "br0", "192.0.2.1/24")
    topo.addr(client, "br0", "2001:db8::1/64")
    for node in lan.nodes:
        wait_link_local(node, "eth0")
    return lan


def wait_link_local(ns: netns.Netns, dev: str) -> None:
    """NDP responders need the interface's link-local address, which appears with carrier."""

    def present() -> bool:
        return "fe80::" in ns.ip("-6", "addr", "show", "dev", dev).stdout

    netns.wait_for(present, timeout=10, what=f"a link-local address on {ns}/{dev}")


@pytest.fixture
def lan(topo: netns.Topology, tmp_path: Path) -> Iterator[Lan]:
    yield build_lan(topo, tmp_path, nodes=1)


@pytest.fixture
def lan2(topo: netns.Topology, tmp_path: Path) -> Iterator[Lan]:
    yield build_lan(topo, tmp_path, nodes=2)
