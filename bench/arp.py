"""ARP reply latency: the layer2 responder vs the kernel, in the same namespaces, same run.

    python -m bench.arp [--count 1000] [--interval 0.005] [--arping-count 20]

A client namespace and a node namespace share a bridge. The node's kernel owns 192.0.2.11 (its
interface address); `python -m metallb_lab.harness.layer2` in the node announces 192.0.2.100 (not
configured anywhere). A prober in the client sends broadcast ARP requests, alternating between
the two targets, and measures each round trip from just before `send()` to the kernel receive
timestamp of the reply (SO_TIMESTAMPNS), so the prober's own wake-up is not counted and both
targets are measured the same way. iputils `arping` is reported alongside as a cross-check:
its `-i` takes whole seconds, so to probe faster than once a second the bench runs
`--arping-rate` arpings per target side by side, each from its own source address (arping only
takes replies to its own address) and staggered evenly over the second. Needs root.

Progress goes to stderr at least every 5 s; SIGTERM or SIGINT stops the run and removes its
namespaces and processes (metallb_lab.signals).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from metallb_lab import netns
from metallb_lab.progress import Progress
from metallb_lab.signals import run_stoppable
from metallb_py.layer2 import frames

KERNEL_IP = "192.0.2.11"
SPEAKER_IP = "192.0.2.100"
CLIENT_IP = "192.0.2.1"
ARPING_SOURCES = tuple(f"192.0.2.{150 + i}" for i in range(50))
"""Client addresses of the parallel arpings, one each (--arping-rate is at most 50)."""
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
REPO = Path(__file__).resolve().parents[1]


def probe(dev: str, source: str, targets: list[str], count: int, interval: float) -> dict[str, Any]:
    """Runs inside the client namespace: `count` probes per target, interleaved; progress on
    stderr."""
    progress = Progress("bench.arp probe")
    mac = bytes.fromhex(Path(f"/sys/class/net/{dev}/address").read_text().strip().replace(":", ""))
    src = socket.inet_aton(source)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(frames.ETH_P_ARP))
    sock.bind((dev, frames.ETH_P_ARP))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    rtts: dict[str, list[float]] = {t: [] for t in targets}
    user: dict[str, list[float]] = {t: [] for t in targets}
    lost = dict.fromkeys(targets, 0)
    requests = {
        t: frames.build_arp(
            frames.ARP_REQUEST,
            eth_dst=frames.BROADCAST_MAC,
            eth_src=mac,
            sender_mac=mac,
            sender_ip=src,
            target_mac=frames.ZERO_MAC,
            target_ip=socket.inet_aton(t),
        )
        for t in targets
    }
    next_slot = time.monotonic()
    for i in range(count * len(targets)):
        target = targets[i % len(targets)]
        packed = socket.inet_aton(target)
        _drain(sock)
        sent_ns = time.time_ns()
        sock.send(requests[target])
        deadline = time.monotonic() + 0.5
        got = None
        while got is None and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                got = _reply_time(sock, packed, src)
        received_ns = time.time_ns()
        if got is None:
            lost[target] += 1
        else:
            rtts[target].append((got - sent_ns) / 1000)
            user[target].append((received_ns - sent_ns) / 1000)
        next_slot += interval
        progress.count(i + 1, count * len(targets), "probes sent")
        time.sleep(max(0.0, next_slot - time.monotonic()))
    return {"rtt_us": rtts, "user_rtt_us": user, "lost": lost}


def _drain(sock: socket.socket) -> None:
    for _ in range(1000):
        try:
            sock.recv(2048)
        except BlockingIOError:
            return


def _reply_time(sock: socket.socket, target: bytes, source: bytes) -> int | None:
    """Kernel receive timestamp (ns) of the reply from `target`, if this frame is it."""
    for _ in range(100):
        try:
            data, ancillary, _flags, addr = sock.recvmsg(2048, 64)
        except BlockingIOError:
            return None
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        pkt = frames.parse_arp(data)
        if (
            isinstance(pkt, frames.ArpPacket)
            and pkt.op == frames.ARP_REPLY
            and pkt.sender_ip == target
            and pkt.target_ip == source
        ):
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    return int(sec * 1_000_000_000 + nsec)
    return None


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[max(0, -(-len(ordered) * 99 // 100) - 1)]
    return {"n": len(ordered), "median": statistics.median(ordered), "p99": p99}


def arping_rtts(
    topo: netns.Topology,
    ns: netns.Netns,
    targets: list[str],
    count: int,
    rate: int,
    progress: Progress,
) -> dict[str, list[float]]:
    """Real `arping` runs: `rate` per target side by side, each from its own source address on
    br0 and sending once a second, all staggered evenly over the second, so every target gets
    `rate` probes a second and `count` probes take about `count / rate` seconds."""
    per_stream = -(-count // rate)
    streams = [(target, ARPING_SOURCES[i]) for i in range(rate) for target in targets]
    for source in ARPING_SOURCES[:rate]:
        topo.addr(ns, "br0", f"{source}/24")
    lines: dict[int, list[str]] = {}
    procs = []
    for k, (target, source) in enumerate(streams):
        if k:
            time.sleep(1.0 / len(streams))  # stagger: no two arpings probe at the same instant
        argv = ["arping", "-c", str(per_stream), "-w", str(per_stream + 2)]
        proc = topo.spawn(ns, [*argv, "-s", source, "-I", "br0", target], stdout=subprocess.PIPE)
        procs.append(proc)
        lines[k] = []
        threading.Thread(target=_collect, args=(proc, lines[k]), daemon=True).start()
    total = per_stream * len(streams)
    deadline = time.monotonic() + per_stream + 30
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.2)
        replies = sum(1 for found in lines.values() for line in found if "ms" in line)
        progress.count(min(replies, total), total, "arping replies")
    for proc in procs:
        topo.kill(proc)
    result: dict[str, list[float]] = {t: [] for t in targets}
    for k, (target, _) in enumerate(streams):
        for line in lines[k]:
            result[target] += [float(ms) * 1000 for ms in re.findall(r"\]\s+([\d.]+)ms", line)]
    return result


def _collect(proc: subprocess.Popen[bytes], into: list[str]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        into.append(raw.decode(errors="replace"))


def run(count: int, interval: float, arping_count: int, arping_rate: int) -> dict[str, Any]:
    reason = netns.available()
    if reason:
        sys.exit(f"bench.arp: {reason}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    progress = Progress("bench.arp")
    with netns.Topology(tag=f"{os.getpid()}b") as topo:
        progress.say("building the client and node namespaces")
        client = topo.add_ns("c")
        node = topo.add_ns("n1")
        topo.veth(node, "eth0", client, "p1")
        topo.bridge(client, "br0", ["p1"])
        topo.addr(client, "br0", f"{CLIENT_IP}/24")
        topo.addr(node, "eth0", f"{KERNEL_IP}/24")
        with progress.step(f"announcing {SPEAKER_IP} from the node (layer2 harness)"):
            speaker = topo.spawn(
                node,
                [sys.executable, "-m", "metallb_lab.harness.layer2", "-i", "eth0"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                env=env,
            )
            assert speaker.stdin is not None and speaker.stdout is not None
            json.loads(speaker.stdout.readline())
            speaker.stdin.write(f"announce bench/arp {SPEAKER_IP}\n".encode())
            speaker.stdin.flush()
            json.loads(speaker.stdout.readline())
        with progress.step("waiting 5.5 s for the takeover burst of gratuitous ARP to end"):
            quiet = time.monotonic() + 5.5
            netns.wait_for(lambda: time.monotonic() > quiet, timeout=10, what="the burst to end")
        with progress.step(f"prober: {count} probes per target, {interval * 1000:g} ms apart"):
            argv = [sys.executable, "-m", "bench.arp", "probe", "--count", str(count)]
            probed = json.loads(
                subprocess.run(
                    client.argv(["env", f"PYTHONPATH={REPO}", *argv, "--interval", str(interval)]),
                    stdout=subprocess.PIPE,
                    check=True,
                    timeout=count * 2 * (interval + 0.5) + 60,
                ).stdout
            )
        arping: dict[str, list[float]] = {}
        if arping_count:
            with progress.step(
                f"arping: {arping_count} probes per target, {arping_rate} a second "
                f"(about {arping_count / arping_rate:.0f} s)"
            ):
                arping = arping_rtts(
                    topo, client, [KERNEL_IP, SPEAKER_IP], arping_count, arping_rate, progress
                )
    progress.close()
    result: dict[str, Any] = {
        "count": count,
        "interval_s": interval,
        "arping_rate": arping_rate,
        "lost": probed["lost"],
        "client": compare(probed["user_rtt_us"]),
        "kernel_timestamp": compare(probed["rtt_us"]),
    }
    if arping and arping[KERNEL_IP] and arping[SPEAKER_IP]:
        result["arping"] = compare(arping)
    return result


def compare(rtts: dict[str, list[float]]) -> dict[str, Any]:
    kernel, speaker = summary(rtts[KERNEL_IP]), summary(rtts[SPEAKER_IP])
    return {
        "kernel": kernel,
        "speaker": speaker,
        "ratio_median": speaker["median"] / kernel["median"],
        "ratio_p99": speaker["p99"] / kernel["p99"],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"ARP reply latency: {result['count']} probes per target, interleaved, "
        f"{result['interval_s'] * 1000:g} ms between probes; lost {result['lost']}",
        "",
        "| measure | kernel median µs | kernel p99 µs | speaker median µs | speaker p99 µs "
        "| ratio median | ratio p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "client": "client-observed (send → reply read, as arping)",
        "kernel_timestamp": "kernel receive timestamp of the reply",
        "arping": f"iputils arping, {result.get('arping_rate', 1)} probes/s",
    }
    for key, name in names.items():
        if key not in result:
            continue
        r = result[key]
        k, s = r["kernel"], r["speaker"]
        lines.append(
            f"| {name} (n={k['n']}/{s['n']}) | {k['median']:.1f} | {k['p99']:.1f} "
            f"| {s['median']:.1f} | {s['p99']:.1f} | {r['ratio_median']:.2f}× "
            f"| {r['ratio_p99']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.arp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("probe", help="(internal) run the prober in the current namespace")
    p.add_argument("--dev", default="br0")
    p.add_argument("--source", default=CLIENT_IP)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--count", type=int, default=1000, help="probes per target")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between probes")
    parser.add_argument("--arping-count", type=int, default=20, help="arping cross-check probes")
    parser.add_argument(
        "--arping-rate",
        type=int,
        default=10,
        help="arping probes per second per target (1-50; iputils arping itself sends one a "
        "second, so this many run side by side)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    if args.command == "probe":
        result = probe(args.dev, args.source, [KERNEL_IP, SPEAKER_IP], args.count, args.interval)
        print(json.dumps(result))
        return 0
    if not 1 <= args.arping_rate <= len(ARPING_SOURCES):
        parser.error(f"--arping-rate must be 1..{len(ARPING_SOURCES)}")

    def measure() -> int:
        result = run(args.count, args.interval, args.arping_count, args.arping_rate)
        print(json.dumps(result, indent=2) if args.json else report(result))
        return 0

    return run_stoppable("bench.arp", measure)


if __name__ == "__main__":
    sys.exit(main())
