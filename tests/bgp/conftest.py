"""Fixtures for sessions against real routers: a router namespace and a node namespace on one
veth (see `metallb_lab.routers.PeeringLink`), routers started on demand."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from metallb_lab import netns
from metallb_lab.routers import (
    BirdRouter,
    FrrRouter,
    GobgpRouter,
    Neighbor,
    PeeringLink,
    Router,
    daemons_available,
)
from metallb_py.bgp import messages as m
from metallb_py.bgp.host import LocalHost
from metallb_py.bgp.session import BgpSession
from metallb_py.config.model import Community, Peer

T = TypeVar("T")
NET = ipaddress.ip_network


@pytest.fixture
def link(topo: netns.Topology) -> PeeringLink:
    reason = daemons_available()
    if reason is not None:
        pytest.skip(reason)
    return PeeringLink.create(topo, extra=("192.0.2.12/24",))


def start_router(
    kind: str,
    link: PeeringLink,
    workdir: Path,
    asn: int,
    neighbors: Sequence[Neighbor],
    **kw: Any,
) -> Router:
    cls: type[Router] = {"frr": FrrRouter, "bird": BirdRouter, "gobgp": GobgpRouter}[kind]
    router = cls(link.topo, link.router, workdir / kind, asn, link.router_v4, list(neighbors), **kw)
    router.start()
    return router


def session(link: PeeringLink, peer: Peer, **kw: Any) -> BgpSession:
    """A session living in the node namespace (call inside the running loop)."""
    return BgpSession(peer, "node-1", host=LocalHost(link.node.name), **kw)


async def until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll a blocking condition (daemon CLI) without stalling the event loop."""
    return await asyncio.to_thread(netns.wait_for, condition, timeout, 0.1, what)


def run(coro: Any, timeout: float = 120.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


ROUTES = [
    m.Route(NET("198.51.100.0/24"), 300, (Community(64512 << 16 | 1), Community(7))),
    m.Route(NET("203.0.113.7/32"), 300),
    m.Route(NET("2001:db8:5::/64"), 50, (Community(64512 << 16 | 2),)),
    m.Route(NET("2001:db8:6::1/128"), 50),
]


def nft(ns: netns.Netns, script: str) -> str:
    """Run an nftables script inside a test namespace; returns nft's output."""
    proc = subprocess.run(
        ns.argv(["nft", "-f", "-"]),
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if proc.returncode != 0:
        raise netns.NetnsError(f"nft failed: {proc.stderr.strip()}\n{script}")
    return proc.stdout


class FastSleep:
    """Injected instead of asyncio.sleep: records each backoff and waits at most `cap`."""

    def __init__(self, cap: float = 0.2) -> None:
        self.delays: list[float] = []
        self.cap = cap

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, self.cap))
