"""`metallb-py lab`: the local lab. `up`, `status`, `down` and `demo` drive a whole cluster in
network namespaces (lab/metallb_lab/lab/, docs/lab.md); `apiserver` runs a Kubernetes API server
in the foreground (the embedded test server, or etcd + kube-apiserver), so kubectl, the
controller and the speaker can be pointed at it."""

from __future__ import annotations

import functools
import json
import signal
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from types import FrameType
from typing import Any

import click

from metallb_lab.lab.layout import ApiBackend


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lab() -> None:
    """A local MetalLB lab without a real cluster."""


EMBEDDED_ONLY = {
    "history_size": "--history-size: kube-apiserver keeps watch history in etcd until compaction",
    "bookmark_interval": "--bookmark-interval: kube-apiserver sends bookmarks on its own schedule",
    "with_monitoring_crds": "--with-monitoring-crds: kube-apiserver serves monitoring.coreos.com "
    "only once the operator's CRDs are applied (kubectl apply them)",
    "with_legacy_apis": "--with-legacy-apis: Kubernetes 1.32 no longer serves those versions",
}
"""Flags of the embedded server that kube-apiserver cannot honour, and why."""
KUBE_APISERVER_HOST = "127.0.0.1"


def backend_refusals(backend: str, host: str, given: Collection[str]) -> list[str]:
    """Why these flags (parameter names given on the command line) do not fit `backend`."""
    if backend != ApiBackend.KUBE_APISERVER:
        return ["--data-dir: only kube-apiserver keeps data"] if "data_dir" in given else []
    problems = [why for name, why in EMBEDDED_ONLY.items() if name in given]
    if host != KUBE_APISERVER_HOST:
        problems.append(
            f"--host {host}: kube-apiserver listens on {KUBE_APISERVER_HOST} only "
            "(its test certificate is for that address)"
        )
    return problems


@lab.command()
@click.option(
    "--backend",
    type=click.Choice([b.value for b in ApiBackend]),
    default=ApiBackend.EMBEDDED.value,
    show_default=True,
    help="embedded: the project's Python server (instant); kube-apiserver: the real one with "
    "etcd, RBAC on (built by scripts/build-control-plane.sh; docs/lab.md).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free port; kube-apiserver: its secure port).",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a kubeconfig for this server here (kube-apiserver: an admin one).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NAME",
    help="Create this namespace at start (repeatable), e.g. metallb-system.",
)
@click.option(
    "--history-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Changes kept per resource for watches; older versions get 410 Gone (embedded only).",
)
@click.option(
    "--service-cidr",
    "service_cidrs",
    multiple=True,
    metavar="CIDR",
    help="Cluster IP range (repeatable; the first is the primary family; two make the cluster "
    "dual-stack). Default: 10.96.0.0/16 and fd00:10:96::/112.",
)
@click.option(
    "--node-port-range",
    default="30000-32767",
    show_default=True,
    metavar="LOW-HIGH",
    help="Node ports for NodePort/LoadBalancer Services (a large lab needs a larger range, or "
    "Services with allocateLoadBalancerNodePorts: false).",
)
@click.option(
    "--bookmark-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.05),
    help="Seconds between BOOKMARK events on watches that allow them (embedded only).",
)
@click.option(
    "--with-monitoring-crds",
    is_flag=True,
    help="Also serve the Prometheus operator's custom resources (monitoring.coreos.com/v1 "
    "PodMonitor, ServiceMonitor, PrometheusRule), as a cluster with the operator's CRDs does "
    "(embedded only).",
)
@click.option(
    "--with-legacy-apis",
    is_flag=True,
    help="Also serve versions Kubernetes 1.25 removed (discovery.k8s.io/v1beta1 EndpointSlices, "
    "policy/v1beta1 PodSecurityPolicies). Default: only what a stock 1.32 cluster serves "
    "(embedded only).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="kube-apiserver: etcd's data, the certificates and the logs go here (a new or empty "
    "directory, removed at exit). Default: a temporary directory.",
)
@click.pass_context
def apiserver(
    ctx: click.Context,
    *,
    backend: str,
    host: str,
    port: int,
    kubeconfig_out: Path | None,
    namespaces: tuple[str, ...],
    history_size: int,
    service_cidrs: tuple[str, ...],
    node_port_range: str,
    bookmark_interval: float,
    with_monitoring_crds: bool,
    with_legacy_apis: bool,
    data_dir: Path | None,
) -> None:
    """Serve a Kubernetes API until SIGINT/SIGTERM: the embedded test server, or etcd and
    kube-apiserver (`--backend kube-apiserver`; stopping removes their processes and data).

    Prints one JSON line with `url` and `kubeconfig` once it accepts connections. Fault
    switches of the embedded server: POST /_fault/{drop-watches,expire-history,outage,fail,
    delay,conflict,reset}.
    """
    import ipaddress

    given = {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    refusals = backend_refusals(backend, host, given)
    if refusals:
        raise click.UsageError(
            f"not with --backend {backend}:\n  " + "\n  ".join(refusals), ctx=ctx
        )
    try:
        low_text, _, high_text = node_port_range.partition("-")
        ports = (int(low_text), int(high_text))
        for cidr in service_cidrs:
            ipaddress.ip_network(cidr)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise click.BadParameter(f"bad node port range {node_port_range}")
    if backend == ApiBackend.KUBE_APISERVER:
        _serve_kube_apiserver(
            port,
            kubeconfig_out,
            namespaces,
            service_cidrs,
            node_port_range if "node_port_range" in given else "",
            data_dir,
        )
        return
    _serve_embedded(
        host,
        port,
        kubeconfig_out,
        namespaces,
        service_cidrs,
        ports,
        history_size=history_size,
        bookmark_interval=bookmark_interval,
        with_monitoring_crds=with_monitoring_crds,
        with_legacy_apis=with_legacy_apis,
    )


def _serve_embedded(
    host: str,
    port: int,
    kubeconfig_out: Path | None,
    namespaces: tuple[str, ...],
    service_cidrs: tuple[str, ...],
    node_ports: tuple[int, int],
    **options: Any,
) -> None:
    from metallb_lab.apiserver import ApiServer, ClusterConfig

    cluster = ClusterConfig(node_port_range=node_ports)
    if service_cidrs:
        cluster.service_cidrs = service_cidrs
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    api = ApiServer(host, port, namespaces=namespaces, cluster=cluster, **options)
    try:
        api.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e}") from e
    try:
        ready: dict[str, str] = {"url": api.url}
        if kubeconfig_out is not None:
            ready["kubeconfig"] = str(api.kubeconfig_path(kubeconfig_out))
        click.echo(json.dumps(ready), nl=True)
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()


def _serve_kube_apiserver(
    port: int,
    kubeconfig_out: Path | None,
    namespaces: tuple[str, ...],
    service_cidrs: tuple[str, ...],
    node_port_range: str,
    data_dir: Path | None,
) -> None:
    """etcd and kube-apiserver until SIGTERM/SIGINT or until one of them exits; then both are
    stopped and the data directory removed. They die with this process even when it is
    SIGKILLed (`die_with_parent`)."""
    import shutil
    import tempfile
    import time

    from metallb_lab.control_plane import (
        SERVICE_CIDRS,
        ControlPlane,
        ControlPlaneError,
        binaries,
    )
    from metallb_lab.signals import Stopped, signals_deferred, stop_on_signals

    try:
        bin_dir = binaries(required=True)
    except ControlPlaneError as e:
        raise click.ClickException(str(e)) from None
    if data_dir is not None:
        if data_dir.exists() and any(data_dir.iterdir()):
            raise click.UsageError(f"--data-dir {data_dir} is not empty")
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="mlb-cp-"))
    cp = ControlPlane(
        bin_dir,
        workdir,
        port=port,
        service_cidrs=service_cidrs or SERVICE_CIDRS,
        node_port_range=node_port_range,
        die_with_parent=True,
    )
    click.echo(f"starting etcd and kube-apiserver (data in {workdir})", err=True)
    try:
        with stop_on_signals():
            try:
                cp.start()
                for namespace in namespaces:
                    cp.ensure_namespace(namespace)
                kubeconfig = (
                    cp.write_kubeconfig(kubeconfig_out, cp.admin_user)
                    if kubeconfig_out is not None
                    else cp.kubeconfig_path
                )
                click.echo(json.dumps({"url": cp.url, "kubeconfig": str(kubeconfig)}), nl=True)
                while (why := cp.exited()) is None:
                    time.sleep(0.5)
                raise click.ClickException(why)
            finally:
                with signals_deferred():
                    cp.stop()
                    shutil.rmtree(workdir, ignore_errors=True)
    except Stopped:
        return
    except ControlPlaneError as e:
        raise click.ClickException(str(e)) from None


def _lab_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """LabError (and a missing namespace tool) become a one-line error, never a traceback.
    SIGTERM and SIGINT stop the command through its clean-up (`lab up` and `lab demo` remove
    what they built); the exit status is then 128 + the signal's number."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from metallb_lab.lab.state import LabError
        from metallb_lab.signals import Stopped, stop_on_signals

        try:
            with stop_on_signals():
                fn(*args, **kwargs)
        except LabError as e:
            raise click.ClickException(str(e)) from None
        except Stopped as stop:
            click.echo(f"{stop}; cleaned up", err=True)
            raise SystemExit(stop.exit_code) from None

    return wrapper


def _echo_hints(lab_obj: Any) -> None:
    """How to look at the running lab yourself: kubectl, and vtysh in bgp mode."""
    from metallb_lab.lab import render

    state = lab_obj.state
    click.echo(render.kubectl_hint(state.api_url, state.kubeconfig, state.apiserver))
    if lab_obj.router is not None:
        click.echo(render.vtysh_hint(lab_obj.layout.client_netns, lab_obj.router.workdir))


APISERVER_OPTION = click.option(
    "--apiserver",
    type=click.Choice([b.value for b in ApiBackend]),
    default=ApiBackend.EMBEDDED.value,
    show_default=True,
    help="The Kubernetes API server: embedded (the project's, instant) or kube-apiserver "
    "(the real one with etcd and RBAC: the manifests are applied and the controller and the "
    "speakers run with their ServiceAccounts' tokens; docs/lab.md).",
)


@lab.command()
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(1, 9),
    help="Node namespaces, each running a speaker and a backend.",
)
@click.option(
    "--mode",
    default="layer2",
    show_default=True,
    type=click.Choice(["layer2", "bgp"]),
    help="How Service IPs are announced (bgp: to FRR in the client namespace, which routes "
    "the client to them).",
)
@APISERVER_OPTION
@_lab_errors
def up(nodes: int, mode: str, apiserver: str) -> None:
    """Build the lab (as root): namespaces, API server, controller, speakers, Services
    (and in bgp mode FRR zebra + bgpd in the client namespace).

    Processes keep running after this command; `lab status` shows them, `lab down` removes
    everything. METALLB_LAB_DIR (default /run/metallb-py-lab) holds the state and the logs.
    """
    from metallb_lab.lab import render
    from metallb_lab.lab.layout import Mode
    from metallb_lab.lab.lifecycle import up as lab_up
    from metallb_lab.progress import Progress

    progress = Progress(write=lambda line: click.echo(f"  {line}"))
    with progress.step(f"building the lab ({nodes} nodes, {mode}, {apiserver})"):
        lab_obj = lab_up(nodes, Mode(mode), progress=progress.say, apiserver=ApiBackend(apiserver))
    progress.close()
    status = lab_obj.status()
    click.echo("")
    click.echo(render.overview(status))
    click.echo("")
    _echo_hints(lab_obj)
    click.echo(f"logs: {lab_obj.directory / 'logs'}")
    click.echo("next: metallb-py lab status | metallb-py lab down")


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_lab_errors
def status(as_json: bool) -> None:
    """Topology, and per Service: IP, announcing nodes, ARP/NDP answers (layer2) or FRR's
    route and next hops (bgp), reachability; in bgp mode each node's BGP session.

    Exit status 0 when every Service is reachable and answered by exactly one node (layer2),
    or routed by FRR to exactly the announcing nodes and answered by one of them (bgp), else 1.
    """
    import dataclasses

    from metallb_lab.lab import render
    from metallb_lab.lab.preflight import preflight
    from metallb_lab.lab.running import Lab

    preflight()
    lab_obj = Lab.load()
    st = lab_obj.status()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "mode": str(st.layout.mode),
                    "apiserver": st.apiserver,
                    "api_url": st.api_url,
                    "kubeconfig": st.kubeconfig,
                    "router": dataclasses.asdict(st.router) if st.router else None,
                    "nodes": [dataclasses.asdict(n) for n in st.nodes],
                    "services": [{**dataclasses.asdict(s), "ok": s.ok} for s in st.services],
                },
                indent=2,
            )
        )
    else:
        click.echo(render.overview(st))
        click.echo("")
        _echo_hints(lab_obj)
    if not all(s.ok for s in st.services):
        raise SystemExit(1)


@lab.command()
@_lab_errors
def down() -> None:
    """Remove the lab: processes, namespaces, state and logs (also after a crash)."""
    from metallb_lab.lab.lifecycle import down as lab_down

    report = lab_down()
    click.echo(
        f"stopped {len(report.stopped)} processes, removed {len(report.namespaces)} namespaces"
        + (f" ({', '.join(report.namespaces)})" if report.namespaces else "")
    )
    if not report.clean:
        raise click.ClickException(
            f"still there: namespaces {list(report.leftover_namespaces)}, "
            f"processes {list(report.leftover_processes)}"
        )


@lab.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(2, 9))
@click.option(
    "--mode",
    default="layer2",
    show_default=True,
    type=click.Choice(["layer2", "bgp"]),
    help="layer2: the elected node crashes; bgp: the ECMP next hop the client uses vanishes.",
)
@APISERVER_OPTION
@_lab_errors
def demo(nodes: int, mode: str, apiserver: str) -> None:
    """Up, curl every Service, crash the owner of one, measure the failover, down.

    Exit status 0 only when every step worked and nothing was left behind.
    """
    from metallb_lab.lab.demo import run_demo
    from metallb_lab.lab.layout import Mode
    from metallb_lab.progress import Progress

    progress = Progress(write=click.echo)
    with progress.step(f"running the demo ({nodes} nodes, {mode}, {apiserver})"):
        result = run_demo(
            nodes, mode=Mode(mode), echo=progress.say, apiserver=ApiBackend(apiserver)
        )
    progress.close()
    if not result.ok:
        raise SystemExit(1)
