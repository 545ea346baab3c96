"""`python -m metallb_lab.harness.arpwatch`: who answers ARP for an IP, sampled from a client.

An oracle independent of metallb-py's own frame code: scapy builds the requests and parses
what the capture sees. Every `--interval` it broadcasts a who-has for each `--ip` and records
every reply addressed to this interface until the next request, plus every other ARP frame
that speaks for a watched IP (gratuitous ARP). One JSON line per event on `--out`, times on
CLOCK_MONOTONIC (the same clock in every namespace):

    {"t": 12.345, "ip": "192.0.2.100", "macs": ["02:..", ..]}     a request and its replies
    {"t": 12.350, "ip": "192.0.2.100", "garp": "02:.."}            an unsolicited announcement

Run it in the client namespace; it stops after `--duration` seconds, on SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import select
import signal
import sys
import time
from typing import Any, TextIO

import click


def _stop_on_signals() -> list[bool]:
    stopped = [False]

    def handler(signum: int, frame: Any) -> None:
        stopped[0] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopped


def watch(iface: str, ips: list[str], interval: float, duration: float, out: TextIO) -> None:
    from scapy.all import ARP, Ether, conf, get_if_addr, get_if_hwaddr  # type: ignore[attr-defined]

    mac = get_if_hwaddr(iface).lower()
    address = get_if_addr(iface)
    sock = conf.L2socket(iface=iface, filter="arp")
    stopped = _stop_on_signals()
    requests = {
        ip: Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
        / ARP(op=1, hwsrc=mac, psrc=address, hwdst="00:00:00:00:00:00", pdst=ip)
        for ip in ips
    }
    watched = set(ips)
    pending: dict[str, tuple[float, set[str]]] = {}

    def flush() -> None:
        for ip, (sent, macs) in sorted(pending.items()):
            out.write(json.dumps({"t": sent, "ip": ip, "macs": sorted(macs)}) + "\n")
        pending.clear()
        out.flush()

    end = time.monotonic() + duration
    next_send = time.monotonic()
    try:
        while not stopped[0] and time.monotonic() < end:
            now = time.monotonic()
            if now >= next_send:
                flush()
                for ip, frame in requests.items():
                    pending[ip] = (time.monotonic(), set())
                    sock.send(frame)
                next_send += interval
                if next_send < now:  # fell behind (a stalled process): do not burst
                    next_send = now + interval
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
            if not ready:
                continue
            packet = sock.recv()
            received = time.monotonic()
            if packet is None or ARP not in packet:
                continue
            arp = packet[ARP]
            if arp.psrc not in watched:
                continue
            sender = str(arp.hwsrc).lower()
            if sender == mac:
                continue
            if arp.op == 2 and str(packet[Ether].dst).lower() == mac and arp.psrc in pending:
                pending[arp.psrc][1].add(sender)
            else:
                out.write(json.dumps({"t": received, "ip": arp.psrc, "garp": sender}) + "\n")
        flush()
    finally:
        sock.close()


@click.command()
@click.option("--iface", required=True)
@click.option("--ip", "ips", multiple=True, required=True)
@click.option("--interval", default=0.05, show_default=True, type=float)
@click.option("--duration", default=600.0, show_default=True, type=float)
@click.option("--out", "out_path", default="-", help="File for the JSON lines (- = stdout).")
def main(iface: str, ips: tuple[str, ...], interval: float, duration: float, out_path: str) -> None:
    """Broadcast ARP requests for IPs and record who answers (see the module docstring)."""
    if out_path == "-":
        watch(iface, list(ips), interval, duration, sys.stdout)
    else:
        with open(out_path, "a", buffering=1) as out:
            watch(iface, list(ips), interval, duration, out)


if __name__ == "__main__":
    main()
