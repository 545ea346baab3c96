"""Send UDP datagrams with scapy (run inside a test namespace): `python3 -m tests.bfd.send_raw
SRC DST DPORT TTL HEX [HEX ...]` sends each hex payload once, from SRC to DST:DPORT with that
IP TTL (or IPv6 hop limit)."""

from __future__ import annotations

import ipaddress
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.sendrecv import send

from metallb_lab.netns import check_documentation_address


def main(argv: list[str]) -> None:
    src, dst, dport, ttl, *payloads = argv
    for address in (src, dst):
        check_documentation_address(address)
    v6 = ipaddress.ip_address(dst).version == 6
    for hex_payload in payloads:
        ip = IPv6(src=src, dst=dst, hlim=int(ttl)) if v6 else IP(src=src, dst=dst, ttl=int(ttl))
        send(ip / UDP(sport=49200, dport=int(dport)) / bytes.fromhex(hex_payload), verbose=0)


if __name__ == "__main__":
    main(sys.argv[1:])
