"""Bad input answers a 400-family Status and never kills a connection thread; shutdown leaves
no threads behind; memory for watches is bounded."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from metallb_lab.apiserver import ApiServer
from metallb_lab.apiserver.resources import DEFAULT_RESOURCES
from metallb_lab.apiserver.selectors import FieldSelector, LabelSelector
from metallb_lab.apiserver.watch import Change, Watcher
from metallb_lab.netns import wait_for
from tests.apiserver.conftest import raw

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "code"),
    [
        ("POST", CMS, "{not json", "application/json", 400),
        ("POST", CMS, "[1, 2]", "application/json", 400),
        ("POST", CMS, "", "application/json", 400),
        ("POST", CMS, "a: [unclosed", "application/yaml", 400),
        ("POST", CMS, '{"metadata": "x"}', "application/json", 400),
        ("POST", CMS, '{"metadata": {"name": "a"}, "data": {"k": 1}}', "application/json", 400),
        ("POST", CMS, '{"apiVersion": "v2", "metadata": {"name": "a"}}', "application/json", 400),
        ("POST", CMS, '{"kind": "Secret", "metadata": {"name": "a"}}', "application/json", 400),
        ("POST", CMS, "\x00\x01", "application/vnd.kubernetes.protobuf", 415),
        ("POST", CMS, "x", "text/plain", 415),
        ("POST", CMS + "/named", "{}", "application/json", 405),
        ("PATCH", CMS + "/x", "{}", "application/x-unknown", 415),
        ("PATCH", CMS + "/x", "{bad", "application/merge-patch+json", 400),
        ("PUT", CMS, "{}", "application/json", 405),
        ("GET", "/api/v1/nothings", None, "application/json", 404),
        ("GET", "/apis/nope.example.com/v1/things", None, "application/json", 404),
        ("GET", "/api/v1/namespaces/default/nodes/x", None, "application/json", 404),
        ("GET", "/api/v1/configmaps/x", None, "application/json", 404),
        ("GET", "/api/v1/namespaces/default/configmaps/x/status", None, "application/json", 404),
        ("GET", "/random/path", None, "application/json", 404),
        ("GET", CMS + "?labelSelector=a%20in%20(", None, "application/json", 400),
        ("GET", CMS + "?limit=many", None, "application/json", 400),
        ("GET", CMS + "?watch=1&timeoutSeconds=soon", None, "application/json", 400),
        ("POST", CMS + "?dryRun=Sometimes", '{"metadata": {"name": "a"}}', "application/json", 400),
    ],
)
def test_bad_requests_get_a_status(
    api: ApiServer, method: str, path: str, body: str | None, content_type: str, code: int
) -> None:
    if method == "PATCH":
        api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    got, payload, _ = raw(api, method, path, body, content_type)
    assert got == code
    assert payload["kind"] == "Status" and payload["code"] == code
    # The server still answers on a new connection.
    assert raw(api, "GET", CMS)[0] == 200


def test_garbage_on_the_socket_does_not_hurt(api: ApiServer) -> None:
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET\r\n\r\n", b"A" * 70000):
        with socket.create_connection((api.host, api.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass
    assert raw(api, "GET", "/version")[0] == 200


def test_keep_alive_serves_many_requests_on_one_connection(api: ApiServer) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    for _ in range(20):
        conn.request("GET", CMS)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.close()


def test_a_vanished_watch_client_is_cleaned_up(api: ApiServer) -> None:
    sock = socket.create_connection((api.host, api.port), timeout=5)
    sock.sendall(f"GET {CMS}?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_for(lambda: api.watch_count() == 1, timeout=5, what="the watch to open")
    sock.close()
    wait_for(lambda: api.watch_count() == 0, timeout=5, what="the server to notice")


def test_stop_joins_every_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    api = ApiServer().start()
    socks = []
    for _ in range(3):  # open watches and idle kept-alive connections
        sock = socket.create_connection((api.host, api.port), timeout=5)
        sock.sendall(f"GET {CMS}?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(sock)
    idle = http.client.HTTPConnection(api.host, api.port, timeout=5)
    idle.request("GET", "/version")
    idle.getresponse().read()
    wait_for(lambda: api.watch_count() == 3, timeout=5, what="the watches to open")
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 5
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []
    for sock in socks:
        sock.close()
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection((api.host, api.port), timeout=1).close()


def test_slow_watch_consumers_are_cut_off() -> None:
    rt = DEFAULT_RESOURCES[3]
    assert rt.plural == "configmaps"
    watcher = Watcher(rt, None, LabelSelector(), FieldSelector(), bookmarks=False, max_queue=3)
    for i in range(5):
        obj = {"kind": "ConfigMap", "apiVersion": "v1",
               "metadata": {"name": f"c{i}", "namespace": "default"}}  # fmt: skip
        watcher.offer(Change(i + 2, "ADDED", ("default", f"c{i}"), obj, None))
    assert watcher.closed and watcher.close_reason == "overflow"
    assert len(watcher.queue) == 3


def test_server_survives_many_concurrent_clients(api: ApiServer) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                body = f'{{"metadata": {{"name": "w{n}-{i}"}}}}'
                assert raw(api, "POST", CMS, body)[0] == 201
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    _, listed, _ = raw(api, "GET", CMS)
    assert len(listed["items"]) == 80
    versions = [int(i["metadata"]["resourceVersion"]) for i in listed["items"]]
    assert len(set(versions)) == 80


def test_bad_content_length_is_400(api: ApiServer) -> None:
    with socket.create_connection((api.host, api.port), timeout=5) as sock:
        sock.sendall(f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode())
        assert sock.recv(200).split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert raw(api, "GET", CMS)[0] == 200
