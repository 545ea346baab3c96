"""Harness hygiene (issue 12): every bench, `metallb-py lab up|demo` and the test fixtures, stopped
by SIGTERM early in their work, exit within seconds and leave no namespace or process behind.

Each program runs with an environment marker of its own (inherited by every process it starts,
in whatever namespace or session), so "nothing left" is checked by scanning /proc for the
marker, and by listing namespaces named after the program's pid. The programs get small sizes,
so that a signal arriving late would still end quickly; each test takes a few seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metallb_lab import netns
from metallb_lab.lab import processes
from metallb_lab.netns import wait_for
from metallb_lab.progress import Progress
from metallb_lab.routers import daemons_available
from metallb_lab.signals import Stopped, signals_deferred, stop_on_signals

from .conftest import LabEnv

REPO = Path(__file__).resolve().parents[2]
MARKER = "METALLB_STOP_TEST"
EXIT_BUDGET = 20.0
"""Seconds from SIGTERM to exit: the clean-up stops processes (2 s grace) and deletes
namespaces."""
STOPPED = 128 + signal.SIGTERM


def _marked(mark: str, but: int = 0) -> list[int]:
    """Live processes carrying MARKER=mark (a zombie has no environment left to read)."""
    needle = f"{MARKER}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (but, os.getpid()):
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _namespaces_of(pid: int) -> list[str]:
    """`mlb*` namespaces named after `pid` (mlbt-<pid>..., mlbbench<pid>-...)."""
    named = re.compile(rf"mlb[a-z]*-?{pid}(\D|$)")
    listing = netns.run(["ip", "netns", "list"], check=False).stdout
    return [n for n in (line.split()[0] for line in listing.splitlines() if line) if named.match(n)]


class Run:
    """A program under test: `python -m ARGS` with a marker, output collected as it comes."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.mark = uuid.uuid4().hex
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env={**os.environ, **(env or {}), MARKER: self.mark},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Iterator[str] | None, into: list[str]) -> None:
        for line in stream or ():
            into.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        return _marked(self.mark, but=self.pid)

    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def stop_once(self, started: Callable[[], bool], what: str) -> float:
        """SIGTERM once `started()` holds; returns the seconds the program took to exit."""
        wait_for(lambda: self.proc.poll() is not None or started(), 90, interval=0.1, what=what)
        assert self.proc.poll() is None, f"ended before it could be stopped:\n{self.output()}"
        self.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        self.proc.wait(timeout=EXIT_BUDGET)
        return time.monotonic() - sent

    def assert_clean_exit(self) -> None:
        for pump in self.pumps:  # the last lines, written just before the exit
            pump.join(timeout=5)
        assert self.proc.returncode == STOPPED, self.output()
        assert "stopped by SIGTERM; cleaned up" in self.output()
        assert "Traceback" not in self.output()
        wait_for(lambda: not self.children(), 5, what="no process of the run left")
        assert _namespaces_of(self.pid) == []

    def close(self) -> None:
        """Whatever happened, nothing of this run survives the test."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in self.children():
            processes.signal_pid(pid, signal.SIGKILL)
        for name in _namespaces_of(self.pid):
            netns.delete_namespace(name)


@pytest.fixture
def run() -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Run:
        r = Run(args, env)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.close()


def _needs_namespaces() -> None:
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)


def _needs_routers() -> None:
    _needs_namespaces()
    reason = daemons_available()
    if reason is not None:
        pytest.skip(reason)


# --- benches ------------------------------------------------------------------------------------


BENCHES = {
    # name: (arguments, needs, started: namespaces and a child of the run exist)
    "arp": (["bench.arp", "--count", "20", "--arping-count", "0"], _needs_namespaces),
    "bgp": (["bench.bgp", "--routes", "100", "--rounds", "1"], _needs_routers),
    "bgp_latency": (["bench.bgp_latency", "--rounds", "1"], _needs_routers),
    "bgp_crash": (
        ["bench.bgp_crash", "--repetitions", "1", "--nodes", "2", "--no-wait-quiet"],
        _needs_routers,
    ),
    "bgp_restart": (["bench.bgp_restart", "--nodes", "2", "--quiet-wait", "0"], _needs_routers),
    "failover": (
        [
            "bench.failover",
            "--repetitions",
            "1",
            "--nodes",
            "2",
            "--no-keepalived",
            "--no-wait-quiet",
        ],
        _needs_namespaces,
    ),
}


@pytest.mark.netns
@pytest.mark.parametrize("bench", sorted(BENCHES))
def test_a_netns_bench_stopped_by_sigterm_leaves_nothing(
    bench: str, run: Callable[..., Run]
) -> None:
    args, needs = BENCHES[bench]
    needs()
    r = run(args)
    took = r.stop_once(
        lambda: bool(_namespaces_of(r.pid)) and bool(r.children()),
        f"bench.{bench} to build its namespaces and start a process",
    )
    r.assert_clean_exit()
    assert took < EXIT_BUDGET


@pytest.mark.parametrize(
    "args",
    [
        ["bench.controller", "--services", "50", "--restart-services", "100"],
        ["bench.allocator"],
    ],
    ids=["controller", "allocator"],
)
def test_a_bench_stopped_by_sigterm_kills_its_children(
    args: list[str], run: Callable[..., Run]
) -> None:
    r = run(args)
    r.stop_once(lambda: bool(r.children()), f"{args[0]} to start its child process")
    r.assert_clean_exit()


# --- the lab ------------------------------------------------------------------------------------


@pytest.mark.netns
def test_lab_up_stopped_by_sigterm_removes_what_it_built(
    lab_env: LabEnv, run: Callable[..., Run]
) -> None:
    r = run(["metallb_py", "lab", "up", "--nodes", "2"], lab_env.env)
    r.stop_once(
        lambda: len(lab_env.namespaces()) == 3 and bool(r.children()),
        "the lab's namespaces and first processes",
    )
    r.assert_clean_exit()
    assert "stopped; removing what was built" in r.output()
    assert lab_env.namespaces() == []
    assert processes.marked_pids(lab_env.prefix) == []
    assert not (lab_env.directory / "state.json").exists()


@pytest.mark.netns
def test_lab_demo_stopped_by_sigterm_takes_its_lab_down(
    lab_env: LabEnv, run: Callable[..., Run]
) -> None:
    r = run(["metallb_py", "lab", "demo", "--nodes", "2"], lab_env.env)
    r.stop_once(lambda: "== 2." in r.output(), "the demo's lab to be up")
    r.assert_clean_exit()
    assert "== stopped: lab down" in r.output()
    assert lab_env.namespaces() == []
    assert processes.marked_pids(lab_env.prefix) == []


# --- the fixtures -------------------------------------------------------------------------------


@pytest.mark.netns
def test_a_pytest_run_stopped_by_sigterm_tears_topo_down(
    tmp_path: Path, run: Callable[..., Run]
) -> None:
    _needs_namespaces()
    ready = tmp_path / "ready"
    r = run(
        ["pytest", "-q", "-p", "no:cacheprovider", "tests/lab/stopping_victim.py"],
        {"METALLB_VICTIM_READY": str(ready)},
    )
    wait_for(lambda: r.proc.poll() is not None or ready.exists(), 60, what="the victim's topo")
    name = ready.read_text()
    assert name in netns.list_namespaces()
    r.proc.send_signal(signal.SIGTERM)
    r.proc.wait(timeout=EXIT_BUDGET)
    for pump in r.pumps:
        pump.join(timeout=5)
    assert "KeyboardInterrupt" in r.output()
    assert name not in netns.list_namespaces()
    wait_for(lambda: not r.children(), 5, what="the victim's sleep to be gone")


# --- progress -----------------------------------------------------------------------------------


def test_progress_speaks_while_a_step_is_quiet() -> None:
    lines: list[str] = []
    progress = Progress("bench.x", every=0.1, write=lines.append)
    with progress.step("waiting"):
        time.sleep(0.45)
    progress.close()
    assert lines[0] == "bench.x: waiting"
    still = [line for line in lines if line.startswith("bench.x: still waiting (")]
    assert 2 <= len(still) <= 5, lines


def test_progress_counts_at_most_every_period_and_always_the_end() -> None:
    lines: list[str] = []
    progress = Progress("", every=60, write=lines.append)
    progress.say("start")
    for done in range(1, 101):
        progress.count(done, 100, "probes")
    assert lines == ["start", "probes: 100/100"]


# --- the signal helpers, in this process ---------------------------------------------------------


def test_a_signal_during_clean_up_acts_once_the_clean_up_is_done() -> None:
    steps: list[str] = []
    with pytest.raises(Stopped) as stopped, stop_on_signals():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("clean-up went on")
        steps.append("never reached")
    assert steps == ["clean-up went on"]
    assert stopped.value.exit_code == STOPPED
    # Outside, the test run's own handling is back.
    assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler


def test_a_second_signal_does_not_cut_the_clean_up_short() -> None:
    steps: list[str] = []
    with pytest.raises(Stopped), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # interrupted at once
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("cleaned up")
    assert steps == ["cleaned up"]
