"""A real Kubernetes control plane for tests and the lab: etcd and kube-apiserver on loopback.

The embedded API server (`metallb_lab.apiserver`) is our reading of Kubernetes; this one is the
judge. Binaries come from `scripts/build-control-plane.sh` (pinned releases built from the Go
module proxy into a cache directory). `ControlPlane` starts etcd with a temporary data directory
and kube-apiserver with what a kubeadm cluster has and MetalLB meets: TLS with a test CA, client
certificates (an admin in `system:masters`), RBAC and Node authorization, service-account
issuer and signing keys (so TokenRequest and `kubectl create token` work), a Service IP range per
family, the default admission plugins. Nothing listens beyond 127.0.0.1; stopping removes every
process and file. `metallb-py lab apiserver --backend kube-apiserver` runs one in the foreground
(`die_with_parent`: etcd and kube-apiserver get SIGKILL when the process that started them dies,
so even a SIGKILLed wrapper leaves no orphan).

    with ControlPlane(binaries()) as cp:
        cp.kubeconfig_path        # admin kubeconfig
        cp.token("metallb-system", "controller")   # a ServiceAccount's token
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

CACHE_POINTER = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "metallb-py"
    / "control-plane"
    / "current"
)
"""`scripts/setup.sh` writes here the directory holding the built binaries."""
BINARIES = ("etcd", "kube-apiserver", "kubectl")
SERVICE_CIDRS = ("10.96.0.0/16", "fd00:10:96::/112")
"""Allocation ranges for ClusterIPs (bookkeeping in the API server; no traffic uses them)."""
CERT_DAYS = 30
"""Lifetime of the test CA and certificates: a lab left up for weeks needs a new one."""
PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane cannot be built, found or started (the message says why)."""


def binaries(required: bool = False) -> Path | None:
    """The directory with etcd, kube-apiserver and kubectl, or None when they are not built
    (`required` turns that into ControlPlaneError)."""
    env = os.environ.get("METALLB_PY_CONTROL_PLANE")
    candidates = [Path(env)] if env else []
    if CACHE_POINTER.exists():
        candidates.append(Path(CACHE_POINTER.read_text().strip()))
    for directory in candidates:
        if all(os.access(directory / b, os.X_OK) for b in BINARIES):
            return directory
    if required:
        raise ControlPlaneError(
            "no control plane built: run `bash scripts/build-control-plane.sh` (needs Go), "
            "or `bash scripts/setup.sh`"
        )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_document(
    server: str,
    user: dict[str, Any],
    namespace: str = "default",
    *,
    ca_data: str | None = None,
    name: str = "metallb-py-test",
) -> dict[str, Any]:
    """A one-context kubeconfig: `server`, the base64 PEM `ca_data` to trust (https), the
    `user` entry (client certificate data, a token, or nothing)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data is not None:
        cluster["certificate-authority-data"] = ca_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": name, "namespace": namespace},
            }
        ],
        "current-context": name,
    }


def _die_with_parent() -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGKILL when the thread that forked it ends (the parent
    process, when started from its main thread), and never outlives a parent already gone."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class ControlPlane:
    def __init__(
        self,
        bin_dir: Path | None = None,
        workdir: Path | None = None,
        *,
        compaction_interval: str = "5m",
        extra_apiserver_args: tuple[str, ...] = (),
        port: int = 0,
        service_cidrs: Sequence[str] = SERVICE_CIDRS,
        node_port_range: str = "",
        die_with_parent: bool = False,
    ) -> None:
        """`port` 0: a free one. `node_port_range` LOW-HIGH, empty: kube-apiserver's default.
        `die_with_parent`: start etcd and kube-apiserver only from the main thread, which must
        outlive them (a restart from a worker thread would be killed when it ends)."""
        found = bin_dir or binaries(required=True)
        assert found is not None
        self.bin_dir = found
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mlb-cp-"))
        self.compaction_interval = compaction_interval
        self.extra_apiserver_args = extra_apiserver_args
        self.service_cidrs = tuple(service_cidrs)
        self.node_port_range = node_port_range
        self.die_with_parent = die_with_parent
        self.etcd_port = 0
        self.port = port
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> ControlPlane:
        try:
            self._certificates()
            self.start_etcd()
            self.start_apiserver(timeout)
        except BaseException:
            self.stop()
            raise
        self._write_admin_kubeconfig()
        return self

    def start_etcd(self) -> None:
        self.etcd_port = self.etcd_port or free_port()
        peer = free_port()
        data = self.workdir / "etcd"
        self.etcd = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # a test cluster: speed over durability of the data dir
                "--log-level=warn",
            ],
        )

    def start_apiserver(self, timeout: float = 90.0) -> None:
        """Start (or start again, on the same port and etcd) kube-apiserver and wait for
        /readyz."""
        self.port = self.port or free_port()
        d = self.workdir
        self.apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--tls-cert-file={d / 'serving.crt'}",
                f"--tls-private-key-file={d / 'serving.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--service-cluster-ip-range={','.join(self.service_cidrs)}",
                *(
                    [f"--service-node-port-range={self.node_port_range}"]
                    if self.node_port_range
                    else []
                ),
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                f"--etcd-compaction-interval={self.compaction_interval}",
                f"--cert-dir={d / 'certs'}",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        self._wait_ready(timeout)

    def stop_apiserver(self) -> None:
        self._terminate(self.apiserver)
        self.apiserver = None

    def stop(self) -> None:
        for proc in (self.apiserver, self.etcd):
            self._terminate(proc)
        self.apiserver = self.etcd = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def exited(self) -> str | None:
        """The message of etcd or kube-apiserver having exited on its own, None while both
        run."""
        for name, proc in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
            if proc is not None and proc.poll() is not None:
                return f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}"
        return None

    # -- what clients need ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def kubectl(self) -> Path:
        """The release's own kubectl (the image's /usr/bin/kubectl is another version)."""
        return self.bin_dir / "kubectl"

    @property
    def ca_data(self) -> str:
        """The test CA, base64 PEM (`certificate-authority-data`)."""
        return _b64(self.workdir / "ca.crt")

    @property
    def admin_user(self) -> dict[str, Any]:
        """The kubeconfig user in `system:masters` (client certificate)."""
        return {
            "client-certificate-data": _b64(self.workdir / "admin.crt"),
            "client-key-data": _b64(self.workdir / "admin.key"),
        }

    def kubeconfig(self, user: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        return kubeconfig_document(self.url, user, namespace, ca_data=self.ca_data)

    def write_kubeconfig(
        self, path: Path, user: dict[str, Any], namespace: str = "default"
    ) -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig(user, namespace)))
        path.chmod(0o600)
        return path

    def token_kubeconfig(
        self, path: Path, namespace: str, service_account: str, seconds: int = 3600
    ) -> Path:
        """A kubeconfig that acts as the ServiceAccount (its RBAC is all it gets)."""
        token = self.token(namespace, service_account, seconds)
        return self.write_kubeconfig(path, {"token": token}, namespace)

    def token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A bound token for the ServiceAccount, through the TokenRequest API (what
        `kubectl create token` does)."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            body,
        )
        token: str = answer["status"]["token"]
        return token

    def ensure_namespace(self, name: str) -> None:
        try:
            self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        except ControlPlaneError as e:
            if " 409 " not in str(e):
                raise

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin request (for fixtures); raises ControlPlaneError with the status."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._admin_tls(), timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ControlPlaneError(f"{method} {path}: {e.code} {e.read()[:300]!r}") from None

    # -- internals --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # A prctl and a getppid after the fork, nothing that takes a lock.
                preexec_fn=_die_with_parent() if self.die_with_parent else None,  # noqa: PLW1509
            )
        finally:
            log.close()

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        ctx.load_cert_chain(str(self.workdir / "admin.crt"), str(self.workdir / "admin.key"))
        return ctx

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if proc is None or proc.poll() is not None:
                    raise ControlPlaneError(f"{name} exited:\n{self.log_tail(name)}")
            try:
                req = urllib.request.Request(self.url + "/readyz")
                with urllib.request.urlopen(req, context=self._admin_tls(), timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready in {timeout:.0f} s ({last}):\n"
            f"{self.log_tail('kube-apiserver')}"
        )

    def _certificates(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        (d / "certs").mkdir(exist_ok=True)
        if (d / "admin.crt").exists():
            return  # a restart on the same directory keeps its CA and keys
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(CERT_DAYS),
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=metallb-py-test-ca",
            cwd=d,
        )
        self._signed(
            "serving",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
        )
        self._signed("admin", "/O=system:masters/CN=metallb-py-admin", None)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)

    def _signed(self, name: str, subject: str, san: str | None) -> None:
        d = self.workdir
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=d,
        )
        ext = ["-extfile", f"{name}.ext"] if san else []
        if san:
            (d / f"{name}.ext").write_text(san + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            str(CERT_DAYS),
            "-out",
            f"{name}.crt",
            *ext,
            cwd=d,
        )

    def _write_admin_kubeconfig(self) -> None:
        self.write_kubeconfig(self.kubeconfig_path, self.admin_user)
