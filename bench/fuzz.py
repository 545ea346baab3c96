"""Mutation campaign against one input surface: what a user writes or a peer sends.

    python -m bench.fuzz SURFACE --inputs N [--seed S] [--max-seconds T] [--out DIR]

Seeds come from config-examples/ and the tests' fixtures; each input is a seed mutated a few
times (bytes flipped, cut, spliced; for text also YAML anchors, aliases, merge keys, tags, deep
nesting, long integers, lone surrogates). Every input runs in a worker process under a time
bound (`--hang-seconds`) and an address-space limit (`--memory-mb`), so a hang, a runaway
allocation or a crash of the C YAML loader is a finding, not the end of the campaign.

Findings: a crash (any exception other than the surface's documented error type, or a worker
killed by a signal), a hang (over `--hang-seconds`), a slow input (over 2 s for an input below
10 kB), memory (the worker's peak RSS over `--peak-mb`). The first reproducers of each kind are
written to `--out` (default: a directory under the system temp dir). Exit status: 0 no
findings, 1 findings, 2 usage error; SIGTERM/SIGINT stop the campaign, end the worker and still
print the summary (exit status 128 + the signal). docs/limits.md lists the surfaces, their
limits and the last results.

The reader surfaces call the product through `SURFACES` only (one small adapter each), so a
reader that is renamed is a one-line change here.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import multiprocessing
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 2.0
SLOW_BELOW_BYTES = 10_000
MAX_INPUT_BYTES = 64_000
PROGRESS_EVERY = 2.0
REPRODUCERS_PER_KIND = 5


# --- the surfaces ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Surface:
    """One input surface: how to feed it, which error it documents, what seeds it and how its
    inputs are mutated ("bytes" for wire data, "text" for YAML/JSON a user writes)."""

    run: Callable[[bytes], object]
    documented: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]
    kind: str


class RefusedInputError(Exception):
    """A surface that answers bad input with a value, not an exception (frames: `Ignored`; a
    ConfigMap: problems), raises this in its adapter so the summary counts the refusals."""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _run_bgp(data: bytes) -> object:
    from metallb_py.bgp import messages

    refused: messages.BgpError | None = None
    for four_octet_as in (True, False):
        for external in (True, False):
            try:
                messages.decode_message(data, four_octet_as=four_octet_as, external=external)
            except messages.BgpError as exc:
                exc.notification()  # the answer must be sendable
                if exc.detail.startswith("undecodable"):  # the safety net: a check is missing
                    raise AssertionError(f"decoder catch-all reached: {exc}") from exc
                refused = exc
    if refused is not None:
        raise refused
    return None


# The peer's OPEN, written out: version 4, My AS 64500 (fbf4), hold time 90 (005a), BGP
# identifier 192.0.2.1, 22 bytes of parameters: one capabilities parameter (type 2, length 20)
# holding MP IPv4 unicast, MP IPv6 unicast, route refresh, 4-octet AS 64500. 19 + 32 = 51 bytes.
_PEER_OPEN = bytes.fromhex(
    "ff" * 16 + "0033 01" + "04 fbf4 005a c0000201 16"
    "02 14 01040001 0001 01040002 0001 0200 4104 0000fbf4"
)
_KEEPALIVE = bytes.fromhex("ff" * 16 + "0013 04")
_ROUTE_REFRESH_V6 = bytes.fromhex("ff" * 16 + "0017 05" + "0002 00 01")  # AFI 2, SAFI 1


class _SessionRig:
    """A `BgpSession` to a loopback listener that plays the peer: for each input it accepts the
    session's connection, completes the OPEN exchange, sends the input and a ROUTE-REFRESH, and
    reads until a NOTIFICATION or the close (the input was refused), the refreshed routes (it was
    taken), or 0.2 s of quiet (the session waits for more bytes); then it hangs up."""

    def __init__(self) -> None:
        import asyncio
        import logging
        import socket

        # Every refused input is a warning; the session's own failures (the findings) are
        # errors and `stats.last_error` says "internal error".
        logging.getLogger("metallb_py.bgp").setLevel(logging.ERROR)

        self.loop = asyncio.new_event_loop()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.setblocking(False)
        self.session = self.loop.run_until_complete(self._start())

    async def _start(self) -> Any:
        import ipaddress

        from metallb_py.bgp.messages import Route
        from metallb_py.bgp.session import BgpSession
        from metallb_py.config.model import Peer

        async def no_backoff(_delay: float) -> None:
            return None

        port = self.listener.getsockname()[1]
        peer = Peer(64512, 64500, ipaddress.ip_address("127.0.0.1"), port=port)
        session = BgpSession(peer, "fuzz", sleep=no_backoff, connect_timeout=2.0)
        session.set_routes([Route(ipaddress.ip_network("2001:db8:5::/64"))])
        return session

    def run(self, data: bytes) -> None:
        self.loop.run_until_complete(self._one(data))
        error = self.session.stats.last_error
        if error.startswith("internal error"):
            self.session.stats.last_error = ""
            raise RuntimeError(f"the session failed on its own: {error}")

    async def _one(self, data: bytes) -> None:
        import asyncio

        sock, _ = await asyncio.wait_for(self.loop.sock_accept(self.listener), 5)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            await asyncio.wait_for(self._script(reader, writer, data), 5)
        finally:
            writer.transport.abort()

    async def _script(self, reader: Any, writer: Any, data: bytes) -> None:
        import asyncio

        async def message() -> tuple[int, bytes]:
            header = await reader.readexactly(19)
            body = await reader.readexactly(int.from_bytes(header[16:18], "big") - 19)
            return header[18], body

        assert (await message())[0] == 1, "the session's OPEN"
        writer.write(_PEER_OPEN + _KEEPALIVE)
        assert (await message())[0] == 4, "the session's KEEPALIVE"
        writer.write(data + _ROUTE_REFRESH_V6)
        updates = 0
        try:
            while True:
                mtype, _ = await asyncio.wait_for(message(), 0.2)  # loopback answers in ms
                if mtype == 3:
                    raise RefusedInputError("NOTIFICATION")
                updates += mtype == 2
                if updates >= 4:  # the table, its End-of-RIBs, then the refreshed route
                    return
        except asyncio.IncompleteReadError:
            raise RefusedInputError("closed") from None
        except TimeoutError:
            return  # waiting for the rest of a message the input started


_SESSION_RIG: list[_SessionRig] = []


def _run_bgp_session(data: bytes) -> object:
    if not _SESSION_RIG:
        _SESSION_RIG.append(_SessionRig())
    _SESSION_RIG[0].run(data)
    return None


_OUR_MAC = bytes.fromhex("020000000011")
_OUR_LINK_LOCAL = bytes.fromhex("fe800000000000000000000000000011")
_ANNOUNCED = {
    bytes([192, 0, 2, 100]): "192.0.2.100",
    bytes.fromhex("20010db8000000000000000000000100"): "2001:db8::100",
}


def _run_arp(data: bytes) -> object:
    from metallb_py.layer2 import frames

    frames.parse_arp(data)
    answer = frames.arp_reply_for(data, _OUR_MAC, _ANNOUNCED)
    if isinstance(answer, frames.Ignored):
        raise RefusedInputError(answer.reason)
    return answer


def _run_ndp(data: bytes) -> object:
    from metallb_py.layer2 import frames

    frames.parse_neighbor_solicitation(data)
    answer = frames.na_reply_for(data, _OUR_MAC, _OUR_LINK_LOCAL, _ANNOUNCED)
    if isinstance(answer, frames.Ignored):
        raise RefusedInputError(answer.reason)
    return answer


def _run_config(data: bytes) -> object:
    from metallb_py.config import parse_config_with_warnings

    return parse_config_with_warnings(_text(data))


def _run_configmap(data: bytes) -> object:
    from metallb_py.config import BgpType
    from metallb_py.k8s.configmap import load_configmap

    try:
        obj = json.loads(data)  # what the API server hands the informer: JSON
    except (ValueError, RecursionError) as exc:
        # An API server never stores (or sends) what does not decode: not the product's input.
        raise RefusedInputError(f"not JSON an API server would send: {exc}") from None
    loaded = load_configmap(obj, BgpType.NATIVE)
    if loaded.config is None:
        raise RefusedInputError(loaded.summary())
    return loaded


def _run_values(fmt: str) -> Callable[[bytes], object]:
    def run(data: bytes) -> object:
        from metallb_py.addons.convert import convert
        from metallb_py.addons.manifests import manifest_files
        from metallb_py.addons.values import read_values, with_config

        text = _text(data)
        files = manifest_files(with_config(read_values(text, fmt)))  # `metallb-py render`
        for f in files:
            f.text()
        return convert(text, fmt, "configmap")  # `metallb-py config convert --from FMT`

    return run


def _run_crds(data: bytes) -> object:
    from metallb_py.addons.convert import convert

    text = _text(data)
    convert(text, "crds", "crds")
    return convert(text, "crds", "configmap")


def _run_services(data: bytes) -> object:
    from metallb_py.controller.plan import load_services

    return load_services(_text(data))


def _config_error() -> tuple[type[BaseException], ...]:
    from metallb_py.config import ConfigError

    return (ConfigError,)


def _services_error() -> tuple[type[BaseException], ...]:
    from metallb_py.controller.plan import ServicesFileError

    return (ServicesFileError,)


# --- seeds -------------------------------------------------------------------------------------


def _files(*patterns: str) -> list[bytes]:
    out: list[bytes] = []
    for pattern in patterns:
        out += [p.read_bytes() for p in sorted(REPO.glob(pattern)) if p.is_file()]
    return out


def _optional(make: Callable[[], list[bytes]]) -> list[bytes]:
    """Seeds from the tests' fixtures when they can be imported (a checkout with the test
    requirements); the campaign still runs on the other seeds without them."""
    try:
        return make()
    except ImportError as exc:
        print(f"fuzz: some test fixtures unavailable ({exc}); fewer seeds", file=sys.stderr)
        return []


def _bgp_seeds() -> list[bytes]:
    # Hand-written: KEEPALIVE (marker, length 19, type 4); End-of-RIB (empty UPDATE, length 23).
    seeds = [b"\xff" * 16 + b"\x00\x13\x04", b"\xff" * 16 + b"\x00\x17\x02" + bytes(4)]

    def from_tests() -> list[bytes]:
        from tests.bgp import test_update_errors
        from tests.bgp.peer_wire import sample_messages

        kept = [data for _, data, _ in test_update_errors.KEPT]
        discarded = [data for _, data, _, _ in test_update_errors.DISCARDED]
        return sample_messages() + kept + discarded

    return seeds + _optional(from_tests)


def _arp_seeds() -> list[bytes]:
    # Hand-written: broadcast ARP request who-has 192.0.2.100 tell 192.0.2.1 (Ethernet header,
    # htype 1, ptype 0x0800, hlen 6, plen 4, op 1, sender MAC/IP, target MAC/IP).
    request = bytes.fromhex(
        "ffffffffffff 020000000001 0806 0001 0800 06 04 0001"
        " 020000000001 c0000201 000000000000 c0000264"
    )

    def from_tests() -> list[bytes]:
        from tests.layer2 import test_frames, test_fuzz

        frames = [test_frames.arp_request(), test_frames.arp_request(dst="02:00:00:00:00:11")]
        return frames + [f for f in test_fuzz.must_not_answer("02:00:00:00:00:11") if f]

    return [request, *_optional(from_tests)]


def _ndp_seeds() -> list[bytes]:
    def from_tests() -> list[bytes]:
        from tests.layer2 import test_frames, test_fuzz

        frames = [test_frames.neighbor_solicitation(), test_frames.neighbor_solicitation(slla=None)]
        return frames + [f for f in test_fuzz.must_not_answer("02:00:00:00:00:11") if f]

    return _optional(from_tests) or _arp_seeds()


def _config_texts() -> list[bytes]:
    import yaml

    out: list[bytes] = []
    for raw in _files("config-examples/configmap-*.yaml", "tests/config/seeds/*configmap*.yaml"):
        for doc in yaml.safe_load_all(raw):
            if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
                text = doc["data"].get("config")
                if isinstance(text, str):
                    out.append(text.encode())
    return out + _files("tests/config/spec_1_12_example.yaml")


def _configmap_seeds() -> list[bytes]:
    import yaml

    out: list[bytes] = []
    for raw in _files("config-examples/configmap-*.yaml", "tests/controller/data/*configmap*"):
        for doc in yaml.safe_load_all(raw):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                out.append(json.dumps(doc).encode())
    return out


# Reproducers reported in issue 12: alias bombs and cycles, realistic slips. As seeds they make
# the campaign meet the known bugs at once, and their mutations meet the neighbouring ones.
_ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
).encode()
_HELM_SLIPS = [
    b"controller: &x {image: {}, <<: *x}\n",
    b"controller:\n  affinity: &a {x: *a}\n",
    b"prometheus:\n  prometheusRule:\n    enabled: true\n    addressPoolUsage:\n"
    b'      thresholds: [{percent: "80"}]\n',
    b"controller:\n  affinity:\n"
    + b"".join(b"    " + line + b"\n" for line in _ALIAS_BOMB.split(b"\n")),
]
_CRDS_SLIPS = [
    b"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: ~}\n"
    b"spec: {addresses: [192.0.2.0/24]}\n",
]
_SERVICES_SLIPS = [
    b"kind: !!int Service\n",
    b"apiVersion: v1\nkind: Service\nmetadata: {name: !!timestamp 2001-01-01}\n",
    b"[" * 600 + b"]" * 600,
    b'{"kind": "Service", "metadata": {"name": "\\ud800"}}',
]


def _values_seeds(pattern: str, extra: list[bytes]) -> Callable[[], list[bytes]]:
    return lambda: _files(pattern) + extra


SURFACES: dict[str, Callable[[], Surface]] = {
    # Wire data a peer sends; the decoders document one error type (BGP) or none (frames).
    "bgp": lambda: Surface(_run_bgp, _bgp_error(), _bgp_seeds, "bytes"),
    "bgp-session": lambda: Surface(_run_bgp_session, (RefusedInputError,), _bgp_seeds, "bytes"),
    "arp": lambda: Surface(_run_arp, (RefusedInputError,), _arp_seeds, "bytes"),
    "ndp": lambda: Surface(_run_ndp, (RefusedInputError,), _ndp_seeds, "bytes"),
    # What a user writes; the readers are being unified (issue 12): change only these lines.
    "config": lambda: Surface(_run_config, _config_error(), _config_texts, "text"),
    "configmap": lambda: Surface(_run_configmap, (RefusedInputError,), _configmap_seeds, "object"),
    "values-helm": lambda: Surface(
        _run_values("helm"),
        _config_error(),
        _values_seeds("config-examples/helm-*.yaml", [*_HELM_SLIPS, b"{}\n"]),
        "text",
    ),
    "values-konvoy": lambda: Surface(
        _run_values("konvoy"),
        _config_error(),
        _values_seeds("config-examples/konvoy-*.yaml", []),
        "text",
    ),
    "values-kontena": lambda: Surface(
        _run_values("kontena"),
        _config_error(),
        _values_seeds("config-examples/kontena-*.yaml", [_ALIAS_BOMB]),
        "text",
    ),
    "crds": lambda: Surface(
        _run_crds,
        _config_error(),
        _values_seeds("config-examples/crds-*.yaml", _CRDS_SLIPS),
        "text",
    ),
    "services": lambda: Surface(
        _run_services,
        _services_error(),
        _values_seeds("tests/controller/data/*.yaml", _SERVICES_SLIPS),
        "text",
    ),
}


def _bgp_error() -> tuple[type[BaseException], ...]:
    from metallb_py.bgp.messages import BgpError

    return (BgpError,)


# --- mutation ----------------------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x0F, 0x10, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFF)
_INTERESTING_U16 = (0, 1, 2, 3, 4, 18, 19, 20, 23, 29, 255, 256, 4095, 4096, 4097, 0x7FFF, 0xFFFF)
_YAML_TOKENS = (
    "&a ",
    "*a",
    "<<: *a",
    "&a [*a]",
    "{<<: *a}",
    "!!int ",
    "!!bool ",
    "!!float ",
    "!!timestamp ",
    "!!binary ",
    "!!str ",
    "!!set ",
    "!!python/object ",
    "~",
    "null",
    "[]",
    "{}",
    '"\\ud800"',
    '"\\x00"',
    "0x",
    "1e999",
    "-",
    "? ",
    ": ",
    "---\n",
    "...\n",
    "\t",
    "'",
    '"',
    "#",
    "%YAML 1.1\n",
)


def _mutate_bytes(data: bytearray, rng: random.Random, pool: list[bytes]) -> None:
    pos = rng.randrange(len(data) + 1)
    op = rng.randrange(9)
    if op == 0 and data:
        data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
    elif op == 1 and data:
        data[min(pos, len(data) - 1)] = rng.choice(_INTERESTING_BYTES)
    elif op == 2 and len(data) >= 2:
        p = min(pos, len(data) - 2)
        data[p : p + 2] = rng.choice(_INTERESTING_U16).to_bytes(2, "big")
    elif op == 3:
        data[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif op == 4:
        del data[pos : pos + rng.randint(1, 32)]
    elif op == 5:
        del data[pos:]
    elif op == 6 and data:  # duplicate a chunk
        start = rng.randrange(len(data))
        data[pos:pos] = data[start : start + rng.randint(1, 64)]
    elif op == 7:  # splice another seed in
        other = rng.choice(pool)
        start = rng.randrange(len(other) + 1)
        data[pos:] = other[start:]
    else:
        data[pos:pos] = bytes([rng.choice(_INTERESTING_BYTES)]) * rng.randint(1, 8)


def _mutate_text(text: str, rng: random.Random, pool: list[bytes]) -> str:
    lines = text.split("\n")
    op = rng.randrange(10)
    i = rng.randrange(len(lines))
    if op == 0:
        cut = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:cut] + rng.choice(_YAML_TOKENS) + lines[i][cut:]
    elif op == 1:  # a scalar becomes something else
        head, sep, _ = lines[i].partition(": ")
        filler = rng.choice(
            [
                "9" * rng.choice((20, 400, 4400, 5000)),
                "192.0.2.0/" + "9" * rng.choice((3, 4400)),
                "x" * rng.choice((1, 300, 5000)),
                "[" * (d := rng.choice((10, 200, 1000, 3000))) + "]" * d,
                "{a: " * (d := rng.choice((10, 200, 1000))) + "1" + "}" * d,
                "~",
                "true",
                "-1",
                "1.5",
                "[1, 2]",
                "{x: 1}",
                '"\\ud800"',
                "!!binary aGk=",
                "2001-12-14",
            ]
        )
        lines[i] = (head + sep if sep else head + ": ") + filler
    elif op == 2:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif op == 3:
        del lines[i]
    elif op == 4:  # indentation slip
        lines[i] = (
            (" " * rng.choice((1, 2, 4))) + lines[i] if rng.random() < 0.5 else lines[i].lstrip()
        )
    elif op == 5:  # anchor a line's value, alias it below
        head, sep, value = lines[i].partition(": ")
        if sep and value:
            lines[i] = f"{head}: &z {value}"
            j = rng.randrange(i, len(lines))
            h2, s2, _ = lines[j].partition(": ")
            lines[j] = f"{h2}: *z" if s2 else lines[j] + " *z"
    elif op == 6:  # self-reference through a merge key
        indent = len(lines[i]) - len(lines[i].lstrip())
        head, sep, _ = lines[i].partition(":")
        if sep:
            lines[i] = f"{head}: &m"
            lines.insert(i + 1, " " * (indent + 2) + "<<: *m")
    elif op == 7:  # splice lines from another seed
        other = _text(rng.choice(pool)).split("\n")
        k = rng.randrange(len(other))
        lines[i:i] = other[k : k + rng.randint(1, 8)]
    elif op == 8:  # a nested block of the same key
        lines.insert(i, lines[i] + ":" + "\n".join([""] + ["  " * d + "k:" for d in range(1, 40)]))
    else:
        return _text(bytes(_bytes_mutation(text.encode("utf-8", "surrogatepass"), rng, pool)))
    return "\n".join(lines)


def _bytes_mutation(data: bytes, rng: random.Random, pool: list[bytes]) -> bytearray:
    buf = bytearray(data)
    _mutate_bytes(buf, rng, pool)
    return buf


def _mutate_object(obj: Any, rng: random.Random, pool: list[bytes]) -> Any:
    """A ConfigMap object: mostly its config text mutated, sometimes its shape."""
    if not isinstance(obj, dict):
        return obj
    data = obj.get("data")
    if rng.random() < 0.8 and isinstance(data, dict) and isinstance(data.get("config"), str):
        data["config"] = _mutate_text(data["config"], rng, pool)
        return obj
    weird: list[Any] = [None, 1, "x", [], {}, [[]] * 3, {"config": 5}, "\ud800", [[[[]]]], True]
    target = rng.choice(["data", "config", "metadata", "extra", "kind"])
    if target == "data":
        obj["data"] = rng.choice(weird)
    elif target == "config" and isinstance(data, dict):
        data[rng.choice(["config", "other"])] = rng.choice(weird)
    elif target == "metadata":
        obj["metadata"] = rng.choice(weird)
    elif target == "kind":
        obj["kind"] = rng.choice(weird)
    else:
        obj[rng.choice(["extra", "config"])] = rng.choice(weird)
    return obj


def mutate(seed: bytes, kind: str, rng: random.Random, pool: list[bytes]) -> bytes:
    """One input: the seed after 1-6 mutations of the surface's kind, at most 64 kB."""
    rounds = rng.choice((1, 1, 2, 2, 3, 4, 6))
    if kind == "object":
        obj = json.loads(seed)
        texts = [json.loads(p)["data"]["config"].encode() for p in pool]
        for _ in range(rounds):
            obj = _mutate_object(obj, rng, texts)
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
    elif kind == "text":
        text = _text(seed)
        for _ in range(rounds):
            text = _mutate_text(text, rng, pool)
        data = text.encode("utf-8", "surrogatepass")
    else:
        buf = bytearray(seed)
        for _ in range(rounds):
            _mutate_bytes(buf, rng, pool)
        data = bytes(buf)
    return data[:MAX_INPUT_BYTES]


# --- the worker --------------------------------------------------------------------------------


def _worker(name: str, conn: Connection, memory_mb: int) -> None:
    """Runs inputs for the parent, one at a time: (status, kind, detail, seconds, peak RSS)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    faulthandler.disable()  # a fatal signal is the parent's finding, not a dump on the terminal
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    surface = SURFACES[name]()
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        start = time.perf_counter()
        status, kind, detail = "ok", "", ""
        try:
            surface.run(data)
        except surface.documented:
            status = "refused"
        except BaseException as exc:
            status = "crash"
            tb = traceback.extract_tb(exc.__traceback__)
            where = next(
                (
                    f"{Path(f.filename).name}:{f.lineno}"
                    for f in reversed(tb)
                    if "metallb_py" in f.filename
                ),
                f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?",
            )
            kind = f"{type(exc).__name__} at {where}"
            detail = "".join(traceback.format_exception(exc, limit=-8))[-4000:]
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        conn.send((status, kind, detail, elapsed, peak))


class Worker:
    """A worker process; replaced after a hang or a death."""

    def __init__(self, name: str, memory_mb: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(name, child, memory_mb), daemon=True)
        self.process.start()
        child.close()

    def run(self, data: bytes, timeout: float) -> tuple[str, str, str, float, int] | None:
        """The worker's answer, or None when it hung or died (then it is gone)."""
        try:
            self.conn.send_bytes(data)
            if self.conn.poll(timeout):
                answer: tuple[str, str, str, float, int] = self.conn.recv()
                return answer
        except (EOFError, OSError):
            pass
        return None

    def stop(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


# --- the campaign ------------------------------------------------------------------------------


@dataclasses.dataclass
class Findings:
    inputs: int = 0
    refused: int = 0
    crashes: dict[str, int] = dataclasses.field(default_factory=dict)
    hangs: int = 0
    slow: int = 0
    memory: int = 0
    slowest: float = 0.0
    slowest_small: float = 0.0
    peak_mb: int = 0
    saved: dict[str, int] = dataclasses.field(default_factory=dict)
    stopped_by: int = 0
    """The signal that ended the campaign early, 0 if none."""

    @property
    def total(self) -> int:
        return sum(self.crashes.values()) + self.hangs + self.slow + self.memory


def campaign(args: argparse.Namespace) -> Findings:
    surface = SURFACES[args.surface]()
    seeds = list(dict.fromkeys(s[:MAX_INPUT_BYTES] for s in surface.seeds() if s))
    random.Random(0).shuffle(seeds)  # the seed pass of a short campaign samples every kind
    if not seeds:
        raise SystemExit(f"fuzz: no seeds for {args.surface}")
    out = Path(args.out or Path(tempfile.gettempdir()) / "metallb-py-fuzz" / args.surface)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    found = Findings()
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    print(
        f"fuzz {args.surface}: {len(seeds)} seeds, {args.inputs} inputs, seed {args.seed}, "
        f"reproducers in {out}",
        flush=True,
    )
    worker = Worker(args.surface, args.memory_mb)
    start = last = time.monotonic()
    try:
        for number in range(args.inputs):
            if stop or time.monotonic() - start > args.max_seconds:
                break
            # Some seeds as they are first (at most half the inputs), then mutations.
            if number < min(len(seeds), args.inputs // 2):
                data = seeds[number]
            else:
                data = mutate(rng.choice(seeds), surface.kind, rng, seeds)
            answer = worker.run(data, args.hang_seconds)
            found.inputs += 1
            if answer is None:
                worker.process.join(1.0)  # a worker that died is reaped; one that hangs is not
                code = worker.process.exitcode
                worker.stop()
                if code is None:
                    found.hangs += 1
                    _save(out, found, "hang", data, f"no answer within {args.hang_seconds} s")
                else:
                    kind = f"worker died (exit {code})"
                    found.crashes[kind] = found.crashes.get(kind, 0) + 1
                    _save(out, found, kind, data, kind)
                worker = Worker(args.surface, args.memory_mb)
            else:
                status, kind, detail, elapsed, peak = answer
                found.peak_mb = max(found.peak_mb, peak)
                found.slowest = max(found.slowest, elapsed)
                if len(data) < SLOW_BELOW_BYTES:
                    found.slowest_small = max(found.slowest_small, elapsed)
                if status == "refused":
                    found.refused += 1
                elif status == "crash":
                    found.crashes[kind] = found.crashes.get(kind, 0) + 1
                    _save(out, found, kind, data, detail)
                if len(data) < SLOW_BELOW_BYTES and elapsed > SLOW_SECONDS:
                    found.slow += 1
                    _save(out, found, "slow", data, f"{elapsed:.2f} s for {len(data)} bytes")
                if peak > args.peak_mb:
                    found.memory += 1
                    _save(out, found, "memory", data, f"peak RSS {peak} MB")
                    worker.stop()  # start the next input from a fresh peak
                    worker = Worker(args.surface, args.memory_mb)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                _progress(args.surface, found, args.inputs, now - start)
    finally:
        worker.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    _progress(args.surface, found, args.inputs, time.monotonic() - start)
    if stop:
        print(f"fuzz {args.surface}: stopped by signal {stop[0]}", flush=True)
        found.stopped_by = stop[0]
    return found


def _progress(name: str, found: Findings, planned: int, seconds: float) -> None:
    rate = found.inputs / seconds if seconds > 0 else 0.0
    print(
        f"fuzz {name}: {found.inputs}/{planned} inputs, {rate:.0f}/s, "
        f"crashes {sum(found.crashes.values())}, hangs {found.hangs}, slow {found.slow}, "
        f"memory {found.memory}, refused {found.refused}, slowest {found.slowest:.3f} s, "
        f"peak RSS {found.peak_mb} MB",
        flush=True,
    )


def _save(out: Path, found: Findings, kind: str, data: bytes, detail: str) -> None:
    count = found.saved.get(kind, 0)
    if count >= REPRODUCERS_PER_KIND:
        return
    found.saved[kind] = count + 1
    stem = "".join(c if c.isalnum() else "-" for c in kind).strip("-")[:80] + f"-{count}"
    (out / f"{stem}.input").write_bytes(data)
    (out / f"{stem}.txt").write_text(f"{kind}\n\n{detail}\n")


def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=doc)
    parser.add_argument("surface", choices=sorted(SURFACES))
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs to run (seeds included)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same inputs")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--hang-seconds", type=float, default=10.0, help="per-input time bound")
    parser.add_argument("--memory-mb", type=int, default=2048, help="worker address-space limit")
    parser.add_argument("--peak-mb", type=int, default=1024, help="peak RSS that is a finding")
    parser.add_argument("--out", help="directory for reproducers")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.max_seconds <= 0 or args.hang_seconds <= 0:
        parser.error("--inputs, --max-seconds and --hang-seconds must be positive")
    sys.path.insert(0, str(REPO))  # the tests' fixtures are seeds
    found = campaign(args)
    summary = {
        "surface": args.surface,
        "inputs": found.inputs,
        "refused": found.refused,
        "crashes": found.crashes,
        "hangs": found.hangs,
        "slow": found.slow,
        "memory": found.memory,
        "slowest_seconds": round(found.slowest, 4),
        "slowest_small_seconds": round(found.slowest_small, 4),
        "peak_rss_mb": found.peak_mb,
    }
    if args.json:
        print(json.dumps(summary))
    for kind, count in sorted(found.crashes.items()):
        print(f"fuzz {args.surface}: crash x{count}: {kind}")
    if found.stopped_by:
        return 128 + found.stopped_by
    return 1 if found.total else 0


if __name__ == "__main__":
    sys.exit(main())
