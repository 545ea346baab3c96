"""Detached lab processes: start them with a log file, find them again, stop them.

Lab processes outlive the command that started them, so they are tracked by pid *and* start
time (a pid alone may have been reused after a crash), and each carries the environment marker
`METALLB_LAB_ID=<prefix>` so `lab down` finds them even when the state file is gone. Only
processes running metallb-py code or FRR's daemons (the bgp lab's router) are ever inspected
for the marker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MARKER_ENV = "METALLB_LAB_ID"
MARKED_PROGRAMS = (
    b"metallb_py",
    b"metallb-py",
    b"metallb_lab",
    b"/usr/lib/frr/",
    b"/etcd\0",
    b"/kube-apiserver\0",
)
"""Command lines that may carry the marker: ours, the lab router's bgpd/zebra, the control
plane's programs (argv[0] ends in their name)."""


@dataclass
class ProcessRecord:
    role: str
    """apiserver, portal, controller, speaker, backend; bgpd and zebra in bgp mode."""
    pid: int
    start_time: int
    """Field 22 of /proc/PID/stat: tells a reused pid from ours."""
    log: str
    node: str = ""
    argv: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            role=str(data["role"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log=str(data.get("log", "")),
            node=str(data.get("node", "")),
            argv=[str(a) for a in data.get("argv", [])],
        )


def stat_of(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = text[text.rfind(")") + 2 :].split()
    return rest[0], int(rest[19])


def running(pid: int, start_time: int | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if given, started at `start_time`."""
    stat = stat_of(pid)
    if stat is None or stat[0] in "ZX":
        return False
    return start_time is None or stat[1] == start_time


def spawn(
    role: str,
    argv: Sequence[str],
    log_path: Path,
    lab_id: str,
    *,
    netns: str | None = None,
    node: str = "",
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start `argv` (inside `netns` when given) in its own session, output to `log_path`."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    environment = {**os.environ, **(env or {}), MARKER_ENV: lab_id, "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
            close_fds=True,
        )
    stat = stat_of(proc.pid)
    return ProcessRecord(
        role=role,
        pid=proc.pid,
        start_time=stat[1] if stat else 0,
        log=str(log_path),
        node=node,
        argv=full,
    )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def marked_pids(lab_id: str) -> list[int]:
    """Running metallb-py processes (and lab FRR daemons) carrying `METALLB_LAB_ID=lab_id`,
    not this process."""
    needle = f"{MARKER_ENV}={lab_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmd = _cmdline(int(entry.name))
        if not any(program in cmd for program in MARKED_PROGRAMS):
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and running(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def signal_pid(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(pids: Iterable[tuple[int, int | None]], grace: float = 2.0) -> list[int]:
    """SIGTERM each (pid, start time) that still runs, SIGKILL what remains after `grace`
    seconds. Returns the pids that were signalled."""
    targets = [(pid, st) for pid, st in pids if running(pid, st)]
    for pid, _ in targets:
        signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(running(p, st) for p, st in targets):
        time.sleep(0.05)
    for pid, st in targets:
        if running(pid, st):
            signal_pid(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(running(p, st) for p, st in targets):
        time.sleep(0.02)
    for pid, _ in targets:
        # Our own children (a lab built in this process) must not stay zombies.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return [pid for pid, _ in targets]


def tail(path: str | Path, lines: int = 15) -> str:
    """The last lines of a log file, for error reports."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
