"""The monitoring HTTP endpoint of both components (port 7472).

`/metrics` answers as soon as the process starts (liveness, like upstream); `/readyz` answers 200
only when the owner says it is ready (caches synced and a config loaded), with the reason
otherwise. `--enable-pprof` has no Python equivalent of Go's profiles; it serves a stack dump of
every thread under `/debug/pprof/`, which is what one reaches for when a process hangs.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from metallb_py.metrics import Registry

Readiness = Callable[[], tuple[bool, str]]

POLL_INTERVAL = 0.05
"""How often the serving thread looks for `stop` (socketserver's default, 0.5 s, would be half of
the second a component has to exit after SIGTERM)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: Registry,
        readiness: Readiness,
        enable_pprof: bool,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.readiness = readiness
        self.enable_pprof = enable_pprof
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, self.server.registry.render(), "text/plain; version=0.0.4")
        elif path in ("/readyz", "/healthz/ready"):
            ready, reason = self.server.readiness()
            self._reply(200 if ready else 503, (reason or ("ok" if ready else "not ready")) + "\n")
        elif path in ("/livez", "/healthz"):
            self._reply(200, "ok\n")
        elif path.startswith("/debug/pprof") and self.server.enable_pprof:
            self._reply(200, _thread_dump())
        else:
            self._reply(404, "not found\n")

    def _reply(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would drown the JSON log; stay quiet."""


def _thread_dump() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, '?')} ({ident})\n")
        out.extend(traceback.format_stack(frame))
    return "".join(out)


class MetricsServer:
    """Serves the registry on host:port from a daemon thread."""

    def __init__(
        self,
        registry: Registry,
        host: str = "",
        port: int = 7472,
        readiness: Readiness | None = None,
        enable_pprof: bool = False,
    ) -> None:
        self._server = _Server(
            (host, port), registry, readiness or (lambda: (True, "ok")), enable_pprof
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="metrics-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (within one poll interval; requests being answered
        run in daemon threads and are not waited for)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
