"""Network namespaces for tests, benchmarks and the lab.

Everything created here is named `<prefix>-<pid>-<suffix>` and recorded, so `close()` removes
it even after a failure (or a SIGTERM turned into an exception, metallb_lab.signals), and
`sweep()` removes what a crashed earlier run left behind. Only
documentation address ranges may be configured (the project's network-safety rule): any other
address is refused before it reaches the kernel.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from metallb_lab.signals import raise_if_stopping, signals_deferred

DOC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
DEFAULT_PREFIX = "mlbt"
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace operation failed; the message carries the command and its stderr."""


def is_documentation_address(address: str) -> bool:
    """True for an address (or interface address `a/len`) inside the documentation ranges."""
    ip = ipaddress.ip_interface(address).ip
    return any(ip in net for net in DOC_NETWORKS)


def check_documentation_address(address: str) -> None:
    if not is_documentation_address(address):
        raise NetnsError(
            f"refusing to use {address}: tests may only use 192.0.2.0/24, 198.51.100.0/24, "
            "203.0.113.0/24 and 2001:db8::/32"
        )


def available() -> str | None:
    """None when namespaces can be used here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def wait_for(
    condition: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll `condition` until it returns a truthy value; bounded by `timeout` seconds, and
    ended early when a signal stops the program (metallb_lab.signals)."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        raise_if_stopping()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)
        last = condition()
    return last


def run(
    argv: Sequence[str], check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class Netns:
    name: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(argv), check=check, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ip", "-n", self.name, *args], check=check)

    def __str__(self) -> str:
        return self.name


@dataclass
class Topology:
    """A set of namespaces and processes owned by one test (or one lab), removed together."""

    prefix: str = DEFAULT_PREFIX
    tag: str = field(default_factory=lambda: str(os.getpid()))
    namespaces: list[Netns] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        name = f"{self.prefix}-{self.tag}-{suffix}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise NetnsError(f"bad namespace name {name!r}")
        return name

    def add_ns(self, suffix: str) -> Netns:
        ns = Netns(self.name(suffix))
        run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        # No IPv6 duplicate address detection delays inside test namespaces.
        ns.run(["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"], check=False)
        ns.run(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"], check=False)
        return ns

    def veth(self, a: Netns, a_if: str, b: Netns, b_if: str) -> None:
        """A veth pair with `a_if` in namespace a and `b_if` in namespace b, both up."""
        tmp_a, tmp_b = (
            f"t{os.getpid() % 100000}a{len(a_if)}",
            f"t{os.getpid() % 100000}b{len(b_if)}",
        )
        run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
        try:
            run(["ip", "link", "set", tmp_a, "netns", a.name, "name", a_if])
            run(["ip", "link", "set", tmp_b, "netns", b.name, "name", b_if])
        except NetnsError:
            run(["ip", "link", "del", tmp_a], check=False)
            raise
        a.ip("link", "set", a_if, "up")
        b.ip("link", "set", b_if, "up")

    def bridge(self, ns: Netns, name: str, ports: Sequence[str] = ()) -> None:
        ns.ip("link", "add", name, "type", "bridge")
        # Forward immediately: no STP listening/learning delay on a lab segment.
        ns.ip("link", "set", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        ns.ip("link", "set", name, "up")
        for port in ports:
            ns.ip("link", "set", port, "master", name)

    def addr(self, ns: Netns, ifname: str, cidr: str) -> None:
        check_documentation_address(cidr)
        args = ["addr", "add", cidr, "dev", ifname]
        if ipaddress.ip_interface(cidr).version == 6:
            args.append("nodad")
        ns.ip(*args)

    def spawn(
        self,
        ns: Netns | None,
        argv: Sequence[str],
        *,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = subprocess.DEVNULL,
        stdin: int | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process (in `ns`, or on the host when None) that `close()` will kill."""
        full = ns.argv(argv) if ns is not None else list(argv)
        proc = subprocess.Popen(
            full, stdin=stdin, stdout=stdout, stderr=stderr, env=env, start_new_session=True
        )
        self.processes.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def close(self) -> None:
        """Kill the processes, delete the namespaces; a signal meanwhile waits until done."""
        with signals_deferred():
            self._close()

    def _close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                self.kill(proc)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            delete_namespace(ns.name)
        self.namespaces.clear()
        # One made but not yet recorded when an exception (a signal) hit add_ns.
        mine = f"{self.prefix}-{self.tag}-"
        for name in list_namespaces(self.prefix):
            if name.startswith(mine):
                delete_namespace(name)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _namespace_pids(name: str) -> list[int]:
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_namespace(name: str) -> None:
    """Kill whatever still runs inside the namespace, then delete it (and its links)."""
    for pid in _namespace_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    run(["ip", "netns", "del", name], check=False)


def list_namespaces(prefix: str = DEFAULT_PREFIX) -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def sweep(prefix: str = DEFAULT_PREFIX, only_dead_owners: bool = True) -> list[str]:
    """Delete namespaces `<prefix>-<pid>-*` whose owning pid is gone (or all, if asked)."""
    removed = []
    for name in list_namespaces(prefix):
        match = re.match(r"(\d+)", name[len(prefix) + 1 :])
        owner = int(match.group(1)) if match else None
        if only_dead_owners and owner is not None and _pid_alive(owner):
            continue
        delete_namespace(name)
        removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def topology(prefix: str = DEFAULT_PREFIX) -> Iterator[Topology]:
    topo = Topology(prefix=prefix)
    try:
        yield topo
    finally:
        topo.close()
