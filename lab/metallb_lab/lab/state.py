"""A lab on disk: where it lives, its prefix, and the state file that lets a later command find
it again (every process with its pid and start time, the layout's parameters, the Service IPs)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from metallb_lab.lab import processes
from metallb_lab.lab.layout import (
    DEFAULT_PREFIX,
    LayoutError,
    check_prefix,
)
from metallb_lab.lab.processes import ProcessRecord

DEFAULT_DIR = Path("/run/metallb-py-lab")
STATE_FILE = "state.json"


class LabError(RuntimeError):
    """Something the user can act on; the CLI prints it without a traceback."""


def lab_dir() -> Path:
    """METALLB_LAB_DIR, else /run/metallb-py-lab (tmpfs: gone after a reboot, as namespaces)."""
    return Path(os.environ.get("METALLB_LAB_DIR") or DEFAULT_DIR)


def lab_prefix() -> str:
    """METALLB_LAB_PREFIX, else `mlblab` (tests and benchmarks use their own)."""
    try:
        return check_prefix(os.environ.get("METALLB_LAB_PREFIX") or DEFAULT_PREFIX)
    except LayoutError as e:
        raise LabError(f"METALLB_LAB_PREFIX: {e}") from None


@dataclass
class LabState:
    prefix: str
    mode: str
    nodes: int
    directory: str
    apiserver: str = "embedded"
    """The API server backend (layout.ApiBackend)."""
    api_url: str = ""
    kubeconfig: str = ""
    """The admin's (the lab's own writes, `lab status`, kubectl)."""
    controller_kubeconfig: str = ""
    node_kubeconfig: str = ""
    """The speakers' (through the portal)."""
    secret: str = ""
    controller_port: int = 0
    macs: dict[str, str] = field(default_factory=dict)
    service_ips: dict[str, list[str]] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.directory) / STATE_FILE

    def save(self) -> None:
        data = {**self.__dict__, "processes": [p.to_json() for p in self.processes]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> LabState | None:
        path = directory / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(
                f"unreadable lab state {path}: {e}; `metallb-py lab down` cleans up"
            ) from None
        try:
            procs = [ProcessRecord.from_json(p) for p in data.pop("processes", [])]
            return cls(**data, processes=procs)
        except (TypeError, KeyError, ValueError) as e:
            raise LabError(f"bad lab state {path}: {e}; `metallb-py lab down` cleans up") from None

    def running(self, role: str, node: str = "") -> ProcessRecord | None:
        for rec in reversed(self.processes):
            if rec.role == role and rec.node == node and processes.running(rec.pid, rec.start_time):
                return rec
        return None
