"""An ARP prober for tests, independent of metallb-py's frame code: every `interval` it
broadcasts a who-has for one IP and records who answered and when.

    ip netns exec CLIENT python -m tests.e2e.arp_probe IFACE IP SECONDS [INTERVAL]

Prints one JSON object: {"samples": [[sent, answered_or_null, mac_or_null], ...]}. Times are
CLOCK_MONOTONIC, shared by every namespace of the machine, so the test can relate them to the
moments it killed and restarted a speaker. Bounded by SECONDS; only the given IP is asked for
(the test passes a documentation address inside its own namespaces).
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def _request(src_mac: bytes, src_ip: bytes, target: bytes) -> bytes:
    # Ethernet: broadcast destination, our MAC, EtherType ARP. ARP: Ethernet/IPv4, op 1 (request).
    eth = b"\xff" * 6 + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + src_ip + b"\x00" * 6 + target
    return eth + arp


def _source_ip(iface: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl

        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))
        return packed[20:24]  # SIOCGIFADDR


def probe(iface: str, ip: str, seconds: float, interval: float) -> list[list[object]]:
    target = socket.inet_aton(ip)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((iface, ETH_P_ARP))
    src_mac = sock.getsockname()[4][:6]
    frame = _request(src_mac, _source_ip(iface), target)
    samples: list[list[object]] = []
    pending: list[object] | None = None
    end = time.monotonic() + seconds
    next_send = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_send:
            pending = [now, None, None]
            samples.append(pending)
            sock.send(frame)
            next_send = now + interval
        ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send, end) - now))
        if not ready:
            continue
        data = sock.recv(128)
        if len(data) < 42 or data[12:14] != b"\x08\x06":
            continue
        op = struct.unpack("!H", data[20:22])[0]
        if op != 2 or data[28:32] != target:
            continue
        if pending is not None and pending[1] is None:
            pending[1] = time.monotonic()
            pending[2] = data[22:28].hex(":")
    sock.close()
    return samples


def main() -> int:
    iface, ip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
    print(json.dumps({"samples": probe(iface, ip, min(seconds, 120.0), max(interval, 0.005))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
