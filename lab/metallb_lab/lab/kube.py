"""A small JSON client for the lab's API server (a separate process): plain HTTP to the
embedded server, HTTPS with the kubeconfig's CA and credentials to kube-apiserver.

The lab writes a dozen objects and reads a few; plain urllib keeps `lab status` from paying for
the `kubernetes` client's import. Method names match the in-process `ApiServer`, so the same
registration code (`objects.register`) serves tests and the lab. `RestClient.from_kubeconfig`
is the one way the lab reaches its server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used (the message names the file and the field)."""


@dataclass(frozen=True)
class Access:
    """What a kubeconfig's current context says about reaching the server."""

    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str = ""


def access_of(config: Any, base: Path = Path(".")) -> Access:
    """The current context's server and credentials (`*-data` fields, or files relative to
    `base`, the kubeconfig's directory, as kubectl reads them)."""

    def named(section: str, name: Any) -> dict[str, Any]:
        for entry in config.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                inner = entry.get(section[:-1])
                return inner if isinstance(inner, dict) else {}
        raise KubeconfigError(f"no {section[:-1]} named {name!r}")

    def blob(entry: dict[str, Any], field: str) -> bytes | None:
        if entry.get(f"{field}-data"):
            try:
                return base64.b64decode(str(entry[f"{field}-data"]), validate=True)
            except (binascii.Error, ValueError):
                raise KubeconfigError(f"{field}-data is not base64") from None
        if entry.get(field):
            try:
                return (base / str(entry[field])).read_bytes()
            except OSError as e:
                raise KubeconfigError(f"{field}: {e}") from None
        return None

    if not isinstance(config, dict):
        raise KubeconfigError("not a kubeconfig (no mapping)")
    context = named("contexts", config.get("current-context"))
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user")) if context.get("user") else {}
    server = str(cluster.get("server") or "")
    if not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"server {server!r} is not an http(s) URL")
    return Access(
        server=server,
        ca_pem=blob(cluster, "certificate-authority"),
        cert_pem=blob(user, "client-certificate"),
        key_pem=blob(user, "client-key"),
        token=str(user.get("token") or ""),
    )


def read_kubeconfig(path: str | Path) -> Access:
    path = Path(path)
    try:
        return access_of(yaml.safe_load(path.read_text()), path.parent)
    except (OSError, yaml.YAMLError, KubeconfigError) as e:
        raise KubeconfigError(f"kubeconfig {path}: {e}") from None


def tls_context(access: Access) -> ssl.SSLContext:
    """Trust the kubeconfig's CA (else the system's) and present its client certificate."""
    ctx = ssl.create_default_context(
        cadata=access.ca_pem.decode() if access.ca_pem is not None else None
    )
    if access.cert_pem is not None and access.key_pem is not None:
        # ssl loads a certificate chain from files only: a private file, gone once read.
        fd, name = tempfile.mkstemp(prefix="mlb-lab-cred-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(access.cert_pem + b"\n" + access.key_pem)
            ctx.load_cert_chain(name)
        finally:
            os.unlink(name)
    return ctx


class RestClient:
    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        *,
        tls: ssl.SSLContext | None = None,
        token: str = "",
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.tls = tls
        self.token = token

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout: float = 10.0) -> RestClient:
        """A client acting as the kubeconfig's current user (KubeconfigError if it cannot)."""
        access = read_kubeconfig(path)
        try:
            tls = tls_context(access) if access.server.startswith("https://") else None
        except ssl.SSLError as e:
            raise KubeconfigError(f"kubeconfig {path}: {e}") from None
        return cls(access.server, timeout, tls=tls, token=access.token)

    def _path(self, api_version: str, plural: str, namespaced: bool, namespace: str | None) -> str:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            return f"{base}/namespaces/{namespace or 'default'}/{plural}"
        return f"{base}/{plural}"

    def _request(self, method: str, path: str, body: Obj | None = None) -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.tls) as resp:
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

    def create_token(self, namespace: str, service_account: str, seconds: int) -> str:
        """A bound token of the ServiceAccount, through the TokenRequest API (what
        `kubectl create token` does)."""
        answer = self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        token = (answer.get("status") or {}).get("token")
        if not isinstance(token, str) or not token:
            raise RestError(0, f"no token in the TokenRequest answer for {service_account}")
        return token

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
