"""HTTP routing of the test API server: resource paths and watch streams (the discovery and
OpenAPI documents it serves are built in discovery.py).

Responses are JSON with Content-Length on kept-alive connections; a watch answers 200 with a
chunked stream of newline-separated events and `Connection: close`, as kube-apiserver does (the
`kubernetes` client hangs on a kept-alive watch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from metallb_lab import Obj
from metallb_lab.apiserver import errors, protobuf, reviews, tables
from metallb_lab.apiserver.discovery import discovery_document, openapi_v2
from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.faults import fault_endpoint
from metallb_lab.apiserver.patch import PATCH_TYPES
from metallb_lab.apiserver.resources import ResourceType
from metallb_lab.apiserver.selectors import parse_field_selector, parse_label_selector
from metallb_lab.apiserver.watch import Watcher

if TYPE_CHECKING:
    from metallb_lab.apiserver.server import ApiServer

log = logging.getLogger(__name__)

_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_JSON_TYPES = ("application/json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/json-patch+json")  # fmt: skip
_YAML_TYPES = ("application/yaml", "text/yaml", "application/apply-patch+yaml")


@dataclass(frozen=True)
class RequestInfo:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool


@dataclass(frozen=True)
class Accept:
    """What the client asked the response to be."""

    table: str | None = None  # meta.k8s.io version of a requested Table
    partial: bool = False  # PartialObjectMetadata(List)
    yaml: bool = False


# The type kube-apiserver answers with (clients ask for `...spec.v2@v1.0+protobuf`, not a valid
# media type, which Go's mime parser would refuse).


def parse_accept(header: str | None) -> Accept:
    if not header:
        return Accept()
    for entry in header.split(","):
        parts = [p.strip() for p in entry.split(";")]
        media = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if media in ("application/json", "*/*", "application/*"):
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
                return Accept(table=params.get("v", "v1"))
            if params.get("as", "").startswith("PartialObjectMetadata"):
                return Accept(partial=True)
            if "as" in params:
                continue  # e.g. an aggregated discovery document: fall back to the next entry
            return Accept()
        if media in ("application/yaml", "text/yaml"):
            return Accept(yaml=True)
    if "protobuf" in header and "json" not in header:
        raise ApiError(
            406,
            "NotAcceptable",
            f"only the following media types are accepted: "
            f"application/json, application/yaml ({header})",
        )
    return Accept()


def _query_flag(query: dict[str, list[str]], name: str) -> bool:
    value = (query.get(name) or [""])[-1].lower()
    return value in ("true", "1")


def _query(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


class ApiRequestHandler(BaseHTTPRequestHandler):
    """One connection; `self.server.api` is the owning ApiServer."""

    protocol_version = "HTTP/1.1"
    server_version = "metallb-py-test-apiserver"
    timeout = 300  # idle kept-alive connections are closed after this long

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def api(self) -> ApiServer:
        return self.server.api  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing --------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, code: int, body: Obj | str, accept: Accept | None = None) -> None:
        if isinstance(body, str):
            data = body.encode()
            content_type = "text/plain; charset=utf-8"
        elif accept is not None and accept.yaml:
            data = yaml.safe_dump(body, sort_keys=False).encode()
            content_type = "application/yaml"
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._code = code

    def _send_error(self, error: ApiError) -> None:
        self._send(error.code, error.status())

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        self._code = 0
        if self.api.refusing() and not self.path.startswith(("/_fault", "/_admin")):
            self.close_connection = True  # the server is "down": hang up without an answer
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send_error(errors.bad_request("malformed request body framing"))
            return
        except OSError:
            self.close_connection = True
            return
        try:
            if url.path.startswith(("/_fault", "/_admin")):
                self._send(200, fault_endpoint(self.api, method, url.path, query, body))
                return
            self.api._before_request(method, url.path)
            self._route(method, url.path, query, body)
        except ApiError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug must answer 500, never kill the connection thread
            log.exception("internal error serving %s %s", method, self.path)
            self._send_error(errors.internal_error(f"{type(e).__name__}: {e}"))
        finally:
            self.api._record_request(method, self.path, self._code, time.monotonic() - started)

    # --- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["openapi", "v2"]:
            data, content_type = openapi_v2("protobuf" in (self.headers.get("Accept") or ""))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self._code = 200
            return
        if method == "GET":
            doc = discovery_document(self.api.table, parts, self.api.host, self.api.port)
            if doc is not None:
                self._send(200, doc)
                return
        if len(parts) >= 3 and parts[0] == "api":
            info = self._resource(parts[2:], "", parts[1])
        elif len(parts) >= 4 and parts[0] == "apis":
            info = self._resource(parts[3:], parts[1], parts[2])
        else:
            raise errors.path_not_found()
        self._serve_resource(method, info, query, body)

    def _resource(self, rest: list[str], group: str, version: str) -> RequestInfo:
        watch_path = bool(rest) and rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace = None
        if len(rest) > 2 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
            namespace = rest[1]
            rest = rest[2:]
        if not rest or len(rest) > 3:
            raise errors.path_not_found()
        rt = self.api.table.by_path(group, version, rest[0])
        if rt is None:
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if (namespace is not None and not rt.namespaced) or (sub and sub not in rt.subresources):
            raise errors.path_not_found()
        if rt.namespaced and namespace is None and name is not None:
            raise errors.path_not_found()
        return RequestInfo(rt, namespace, name, sub, watch_path)

    # --- verbs -----------------------------------------------------------------------------------

    def _serve_resource(
        self, method: str, info: RequestInfo, query: dict[str, list[str]], body: bytes
    ) -> None:
        api = self.api
        store = api.store
        rt = info.rt
        accept = parse_accept(self.headers.get("Accept"))
        dry_run = self._dry_run(query)
        if method == "GET":
            reading = "get" if info.name is not None else "list"
            if info.watch_path or _query_flag(query, "watch"):
                reading = "watch"
            if reading not in rt.verbs:
                raise errors.method_not_allowed()
            if info.watch_path or _query_flag(query, "watch"):
                if info.subresource:
                    raise errors.method_not_allowed()
                self._serve_watch(info, query, accept)
                return
            if info.name is not None:
                obj = store.get(rt, info.namespace, info.name)
                self._send(200, self._render_one(rt, obj, accept, query), accept)
                return
            self._serve_list(info, query, accept)
            return
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if method == "DELETE" and info.name is None:
            verb = "deletecollection"
        if verb not in rt.verbs:
            raise errors.method_not_allowed()
        if rt.kind in reviews.KINDS and method == "POST" and info.name is None:
            request = self._decode(body, self._content_type())
            if not isinstance(request, dict):
                raise errors.bad_request(f"a {rt.kind} must be an object")
            self._send(201, reviews.answer(rt.api_version, rt.kind, request), accept)
            return
        if method != "POST" and verb != "deletecollection" and info.name is None:
            raise errors.method_not_allowed()
        if method == "POST" and info.name is not None:
            raise errors.method_not_allowed()
        if method in ("PUT", "PATCH"):
            assert info.name is not None
            api.faults.check_conflict(rt, info.namespace, info.name, info.subresource)
        if method == "POST":
            created = store.create(
                rt, info.namespace, self._decode(body, self._content_type()), dry_run
            )
            self._send(201, self._render_one(rt, created, accept, query), accept)
        elif method == "PUT":
            assert info.name is not None
            obj, was_created = store.update(
                rt,
                info.namespace,
                info.name,
                self._decode(body, self._content_type()),
                subresource=info.subresource,
                dry_run=dry_run,
            )
            self._send(
                201 if was_created else 200, self._render_one(rt, obj, accept, query), accept
            )
        elif method == "PATCH":
            assert info.name is not None
            content_type = self._content_type()
            if content_type not in PATCH_TYPES:
                raise errors.ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(PATCH_TYPES)}",
                )
            patch_body = self._decode(body, content_type)
            obj, was_created = store.patch(
                rt,
                info.namespace,
                info.name,
                content_type,
                patch_body,
                subresource=info.subresource,
                dry_run=dry_run,
                field_manager=_query(query, "fieldManager"),
            )
            self._send(
                201 if was_created else 200, self._render_one(rt, obj, accept, query), accept
            )
        elif verb == "delete":
            assert info.name is not None
            if info.subresource:
                raise errors.method_not_allowed()
            options = self._decode(body, "application/json") if body.strip() else {}
            result = store.delete(rt, info.namespace, info.name, options, dry_run=dry_run)
            pending = bool((result.get("metadata") or {}).get("deletionTimestamp"))
            self._send(202 if pending else 200, result, accept)
        else:
            options = self._decode(body, "application/json") if body.strip() else {}
            label = parse_label_selector(_query(query, "labelSelector"))
            fields = parse_field_selector(_query(query, "fieldSelector"), rt.selectable_fields())
            items = store.delete_collection(
                rt, info.namespace, label, fields, options=options, dry_run=dry_run
            )
            self._send(
                200,
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(store.rv)},
                    "items": items,
                },
                accept,
            )

    def _content_type(self) -> str:
        return (
            (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        )

    @staticmethod
    def _dry_run(query: dict[str, list[str]]) -> bool:
        values = query.get("dryRun") or []
        for value in values:
            if value != "All":
                raise errors.bad_request(
                    f'dryRun: Unsupported value: "{value}": supported values: "All"'
                )
        return bool(values)

    @staticmethod
    def _decode(body: bytes, content_type: str) -> Any:
        if not body.strip():
            raise errors.bad_request("the request body is empty")
        if content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(body)
            except protobuf.UnreadableError:
                raise errors.unsupported_media_type(content_type) from None
            except protobuf.ProtobufError as e:
                raise errors.bad_request(f"unable to decode the protobuf body: {e}") from None
        if content_type not in _JSON_TYPES + _YAML_TYPES:
            raise errors.unsupported_media_type(content_type)
        try:
            if content_type in _YAML_TYPES:
                return yaml.safe_load(body.decode())
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _render_one(
        self, rt: ResourceType, obj: Obj, accept: Accept, query: dict[str, list[str]]
    ) -> Obj:
        if accept.table:
            include = _query(query, "includeObject") or "Metadata"
            rendered = tables.table(
                rt.kind,
                [obj],
                include,
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            )
            rendered["apiVersion"] = f"meta.k8s.io/{accept.table}"
            return rendered
        if accept.partial:
            return tables.partial_metadata(obj)
        return obj

    def _serve_list(self, info: RequestInfo, query: dict[str, list[str]], accept: Accept) -> None:
        rt = info.rt
        label = parse_label_selector(_query(query, "labelSelector"))
        fields = parse_field_selector(_query(query, "fieldSelector"), rt.selectable_fields())
        limit_text = _query(query, "limit")
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError:
            raise errors.bad_request(f"invalid limit {limit_text!r}") from None
        result = self.api.store.list(
            rt,
            info.namespace,
            label,
            fields,
            resource_version=_query(query, "resourceVersion"),
            resource_version_match=_query(query, "resourceVersionMatch"),
            limit=limit if limit and limit > 0 else None,
            continue_token=_query(query, "continue"),
        )
        meta: Obj = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        if accept.table:
            body = tables.table(
                rt.kind, result.items, _query(query, "includeObject") or "Metadata", meta
            )
            body["apiVersion"] = f"meta.k8s.io/{accept.table}"
        elif accept.partial:
            body = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": [tables.partial_metadata(o) for o in result.items],
            }
        else:
            if rt.strategic:  # built-in lists carry no per-item kind/apiVersion
                items = [
                    {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                    for o in result.items
                ]
            else:
                items = result.items
            body = {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": meta,
                "items": items,
            }
        self._send(200, body, accept)

    # --- watch -----------------------------------------------------------------------------------

    def _serve_watch(self, info: RequestInfo, query: dict[str, list[str]], accept: Accept) -> None:
        api = self.api
        rt = info.rt
        label = parse_label_selector(_query(query, "labelSelector"))
        fields_text = _query(query, "fieldSelector") or ""
        if info.name is not None:
            fields_text = ",".join(x for x in (fields_text, f"metadata.name={info.name}") if x)
        fields = parse_field_selector(fields_text, rt.selectable_fields())
        timeout_text = _query(query, "timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else api.watch_timeout
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds {timeout_text!r}") from None
        initial_text = _query(query, "sendInitialEvents")
        send_initial = None if initial_text is None else initial_text.lower() == "true"
        bookmarks = _query_flag(query, "allowWatchBookmarks")
        watcher = api.store.watch(
            rt,
            info.namespace,
            label,
            fields,
            resource_version=_query(query, "resourceVersion"),
            bookmarks=bookmarks,
            send_initial_events=send_initial,
        )
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self._code = 200
            if watcher.error is not None:
                self._chunk({"type": "ERROR", "object": watcher.error.status()})
            else:
                self._stream(watcher, timeout, accept, query)
            if watcher.close_reason != "abrupt":
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            api.store.unwatch(watcher)

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    def _stream(
        self, watcher: Watcher, timeout: float, accept: Accept, query: dict[str, list[str]]
    ) -> None:
        api = self.api
        rt = watcher.rt
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + api.bookmark_interval
        include = _query(query, "includeObject") or "Metadata"
        while True:
            now = time.monotonic()
            if now >= deadline or api.stopping:
                return
            wait = min(deadline, next_bookmark if watcher.bookmarks else deadline) - now
            events = watcher.take(max(0.0, min(wait, 0.25)))
            for kind, obj in events:
                shown = obj
                if accept.table and kind != "BOOKMARK":
                    shown = tables.table(rt.kind, [obj], include)
                    shown["apiVersion"] = f"meta.k8s.io/{accept.table}"
                self._chunk({"type": kind, "object": shown})
            if watcher.closed and not watcher.queue:
                if watcher.close_reason == "abrupt":
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                return
            now = time.monotonic()
            if watcher.bookmarks and (now >= next_bookmark or watcher.bookmark_requested):
                bookmark = api.store.bookmark(watcher)
                if bookmark is not None:
                    self._chunk({"type": "BOOKMARK", "object": bookmark})
                    next_bookmark = now + api.bookmark_interval
            elif watcher.bookmark_requested:
                watcher.bookmark_requested = False
            if not events and self._client_gone():
                return
