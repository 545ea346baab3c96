"""A small JSON client for the lab's API server (a separate process, reached over HTTP).

The lab writes a dozen objects and reads a few; plain urllib keeps `lab status` from paying for
the `kubernetes` client's import. Method names match the in-process `ApiServer`, so the same
registration code (`objects.register`) serves tests and the lab.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request

from metallb_lab import Obj

# kind -> (apiVersion, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Node": ("v1", "nodes", False),
    "Pod": ("v1", "pods", True),
    "Service": ("v1", "services", True),
    "ConfigMap": ("v1", "configmaps", True),
    "Event": ("v1", "events", True),
    "Namespace": ("v1", "namespaces", False),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices", True),
}
PLURALS = {
    plural: (kind, version, namespaced) for kind, (version, plural, namespaced) in KINDS.items()
}


class RestError(RuntimeError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"HTTP {code}: {message}")
        self.code = code


class RestClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _path(self, api_version: str, plural: str, namespaced: bool, namespace: str | None) -> str:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            return f"{base}/namespaces/{namespace or 'default'}/{plural}"
        return f"{base}/{plural}"

    def _request(self, method: str, path: str, body: Obj | None = None) -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                result: Obj = json.loads(resp.read() or b"{}")
                return result
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            raise RestError(e.code, f"{method} {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise RestError(0, f"{method} {path}: {e}") from None

    def _obj_path(self, obj: Obj) -> str:
        kind = obj.get("kind", "")
        if kind not in KINDS:
            raise ValueError(f"the lab client does not know kind {kind!r}")
        version, plural, namespaced = KINDS[kind]
        return self._path(version, plural, namespaced, (obj.get("metadata") or {}).get("namespace"))

    def create(self, obj: Obj) -> Obj:
        return self._request("POST", self._obj_path(obj), obj)

    def update(self, obj: Obj, subresource: str = "") -> Obj:
        name = obj["metadata"]["name"]
        suffix = f"/{subresource}" if subresource else ""
        return self._request("PUT", f"{self._obj_path(obj)}/{name}{suffix}", obj)

    def update_status(self, obj: Obj) -> Obj:
        return self.update(obj, "status")

    def get(self, plural: str, name: str, namespace: str | None = None) -> Obj:
        _, version, namespaced = PLURALS[plural]
        return self._request("GET", f"{self._path(version, plural, namespaced, namespace)}/{name}")

    def list(self, plural: str, namespace: str | None = None) -> list[Obj]:
        _, version, namespaced = PLURALS[plural]
        if namespaced and namespace is None:
            base = f"/api/{version}" if "/" not in version else f"/apis/{version}"
            path = f"{base}/{plural}"
        else:
            path = self._path(version, plural, namespaced, namespace)
        items: list[Obj] = self._request("GET", path).get("items") or []
        return items

    def replace(self, obj: Obj) -> Obj:
        """Update `obj` at its current resourceVersion (create it when missing)."""
        meta = obj["metadata"]
        plural = KINDS[obj["kind"]][1]
        try:
            current = self.get(plural, meta["name"], meta.get("namespace"))
        except RestError as e:
            if e.code != 404:
                raise
            return self.create(obj)
        body = {
            **obj,
            "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]},
        }
        return self.update(body)
