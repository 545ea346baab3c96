"""Build and remove a lab (`lab up`, `lab down`).

`up` builds what `layout.plan_lab` describes and records every process and the layout in a
state file (state.py); `down` removes everything, from the state file and by sweeping lab-named
namespaces and marked processes when the state is gone. Every wait is bounded and every failure
becomes a `LabError` with a readable message; `up` removes what it built when it fails or is
stopped (SIGTERM, SIGINT).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from metallb_lab import netns
from metallb_lab.lab import credentials, objects, processes, router
from metallb_lab.lab.commands import (
    apiserver_command,
    controller_args,
    portal_command,
    python_command,
)
from metallb_lab.lab.kube import KubeconfigError, RestError
from metallb_lab.lab.layout import (
    AVAILABLE_MODES,
    BRIDGE,
    ROUTER_ASN,
    ApiBackend,
    LabLayout,
    LayoutError,
    Mode,
    config_text,
    plan_lab,
)
from metallb_lab.lab.preflight import TOOLS_UP, preflight, preflight_bgp, preflight_kube_apiserver
from metallb_lab.lab.processes import ProcessRecord
from metallb_lab.lab.running import STARTUP_TIMEOUT, Lab
from metallb_lab.lab.state import STATE_FILE, LabError, LabState, lab_dir, lab_prefix
from metallb_lab.lab.status import (
    DownReport,
)
from metallb_lab.lab.topology import (
    LabTopology,
    add_service_ip,
    build_lan,
    mac_of,
)
from metallb_lab.netns import NetnsError
from metallb_lab.signals import Stopped, signals_deferred

Progress = Callable[[str], None]
CONTROL_PLANE_DIR = "control-plane"
"""kube-apiserver backend: etcd's data, certificates and logs, in the lab directory."""
KUBE_APISERVER_TIMEOUT = 120.0
"""kube-apiserver backend: etcd and kube-apiserver ready (~5 s on an idle 2-core machine)."""
APISERVER_STOP_GRACE = 20.0
"""`lab down`: time for the API server wrapper to stop kube-apiserver (~3 s) and etcd."""


def up(
    nodes: int = 3,
    mode: Mode = Mode.LAYER2,
    *,
    directory: Path | None = None,
    prefix: str | None = None,
    progress: Progress = lambda _: None,
    tools: Sequence[str] = TOOLS_UP,
    apiserver: ApiBackend = ApiBackend.EMBEDDED,
) -> Lab:
    """Build the lab on the `apiserver` backend and wait until every Service answers from the
    client.

    On failure everything built so far is removed and a LabError says what went wrong; when
    stopped (SIGTERM, SIGINT: metallb_lab.signals.Stopped) it is removed as well.
    """
    directory = directory or lab_dir()
    prefix = prefix or lab_prefix()
    if mode not in AVAILABLE_MODES:
        raise LabError(f"--mode {mode} is not available in the lab; use --mode layer2")
    try:
        layout = plan_lab(nodes, mode, prefix)
    except LayoutError as e:
        raise LabError(str(e)) from None
    preflight(tools)
    if mode is Mode.BGP:
        preflight_bgp()
    if apiserver is ApiBackend.KUBE_APISERVER:
        preflight_kube_apiserver()
    _refuse_running(directory, prefix)
    # Nothing of a lab runs now: a data directory left by a SIGKILLed API server is stale.
    shutil.rmtree(directory / CONTROL_PLANE_DIR, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    state = LabState(
        prefix=prefix,
        mode=str(mode),
        nodes=nodes,
        directory=str(directory),
        apiserver=str(apiserver),
        secret=secrets.token_hex(16),
    )
    state.save()
    lab = Lab(state)
    try:
        _build(lab, layout, progress)
    except BaseException as e:
        progress(f"{'stopped' if isinstance(e, Stopped) else 'failed'}; removing what was built")
        down(directory, prefix)
        if isinstance(e, LabError):
            raise
        if isinstance(e, (NetnsError, RestError, KubeconfigError, OSError, TimeoutError)):
            raise LabError(f"lab up failed: {e}") from None
        raise
    return lab


def _refuse_running(directory: Path, prefix: str) -> None:
    state = LabState.load(directory)
    alive = [
        p for p in (state.processes if state else []) if processes.running(p.pid, p.start_time)
    ]
    spaces = netns.list_namespaces(prefix)
    if state is not None and (alive or spaces):
        raise LabError(
            f"a lab is already up (state in {directory / STATE_FILE}); "
            "`metallb-py lab status` shows it, `metallb-py lab down` removes it"
        )
    if spaces or processes.marked_pids(prefix):
        raise LabError(
            f"leftovers of an earlier lab ({', '.join(spaces) or 'processes'}) are still there; "
            "`metallb-py lab down` removes them"
        )
    if state is not None:  # a stale state file, nothing behind it
        down(directory, prefix)


def _build(lab: Lab, layout: LabLayout, progress: Progress) -> None:
    state, directory = lab.state, lab.directory
    backend = ApiBackend(state.apiserver)
    started = time.monotonic()
    if backend is ApiBackend.KUBE_APISERVER:
        progress("starting etcd and kube-apiserver on 127.0.0.1 (RBAC on)")
    else:
        progress("starting the test API server on 127.0.0.1")
    api = lab._spawn(
        "apiserver",
        apiserver_command(directory / "kubeconfig", backend, directory / CONTROL_PLANE_DIR),
    )

    def api_ready(line: str) -> dict[str, str] | None:
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict) and "url" in data:
                return data
        return None

    timeout = KUBE_APISERVER_TIMEOUT if backend is ApiBackend.KUBE_APISERVER else STARTUP_TIMEOUT
    ready = lab._wait_log(api, api_ready, "the API server", timeout)
    state.api_url = ready["url"]
    state.kubeconfig = ready.get("kubeconfig", str(directory / "kubeconfig"))
    state.save()
    if backend is ApiBackend.KUBE_APISERVER:
        progress(
            "kubectl apply -f manifests/ (admin); the controller and the speakers get tokens "
            "of its ServiceAccounts"
        )
    kubeconfigs = credentials.component_kubeconfigs(
        backend, directory, Path(state.kubeconfig), lab.rest
    )
    state.controller_kubeconfig = str(kubeconfigs.controller)
    state.node_kubeconfig = str(kubeconfigs.node)
    state.save()

    progress(f"building namespaces: {layout.client_netns} with {BRIDGE}, {len(layout.nodes)} nodes")
    topo = LabTopology(prefix=layout.prefix)
    lan = build_lan(topo, layout)
    state.macs = {name: mac_of(ns) for name, ns in lan.nodes.items()}
    state.save()

    progress("registering Nodes, speaker Pods, the config, Services and EndpointSlices")
    rest = lab.rest
    for plan in layout.nodes:
        objects.register(rest, objects.node(plan.name, plan.ipv4))
        objects.register(
            rest,
            objects.speaker_pod(plan.name, plan.ipv4, service_account=credentials.SPEAKER_ACCOUNT),
        )
    rest.create(objects.config_map(config_text(layout)))
    for svc in layout.services:
        rest.create(objects.service(svc))
        rest.create(
            objects.endpoint_slice(
                svc.name, svc.family, svc.endpoint_nodes, all_nodes=layout.node_names
            )
        )
    _mode_extras(lab, layout, progress)

    portal = lab._spawn("portal", portal_command(lab.api_port, [n.netns for n in layout.nodes]))
    lab._wait_log(portal, lambda line: line.strip() == "ready", "the portal", STARTUP_TIMEOUT)

    progress("starting the controller")
    ctl = lab._spawn(
        "controller",
        python_command("metallb_py", *controller_args(state.controller_kubeconfig)),
    )

    def allocated() -> bool:
        ips = lab.refresh_service_ips()
        return all(ips.get(s.name) for s in layout.services)

    try:
        netns.wait_for(allocated, STARTUP_TIMEOUT, interval=0.1, what="IP allocation")
    except TimeoutError:
        raise LabError(
            f"the controller allocated no IPs in {STARTUP_TIMEOUT:.0f} s:\n"
            + processes.tail(ctl.log)
        ) from None
    state.controller_port = _startup_port(ctl)
    state.save()

    progress("backends on the Service IPs in every node, then one speaker per node")
    for plan in layout.nodes:
        ns = lan.nodes[plan.name]
        for ips in state.service_ips.values():
            for ip in ips:
                add_service_ip(ns, ip)
        lab.start_backend(plan.name)
    for plan in layout.nodes:
        lab.start_speaker(plan.name)
    if layout.mode is Mode.BGP:
        progress("waiting until FRR routes every Service to its nodes and each answers curl")
    else:
        progress("waiting until every Service answers from its elected node")
    lab.wait_settled()
    progress(f"lab up in {time.monotonic() - started:.1f} s")


def _mode_extras(lab: Lab, layout: LabLayout, progress: Progress) -> None:
    """Per-mode additions to the shared LAN. Layer2 needs none; BGP starts its router: FRR
    zebra + bfdd + bgpd in the client namespace, a passive neighbour with BFD per node
    address."""
    if layout.mode is Mode.BGP:
        progress(
            f"starting FRR (zebra + bfdd + bgpd, AS {ROUTER_ASN}) in {layout.client_netns}, "
            f"peering with {len(layout.nodes)} nodes"
        )
        lab.start_router()
    elif layout.mode is not Mode.LAYER2:
        raise LabError(f"mode {layout.mode} is not yet available in the lab")


def _startup_port(rec: ProcessRecord) -> int:
    with contextlib.suppress(OSError):
        for line in Path(rec.log).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("op") == "startup" and "port" in entry:
                    return int(entry["port"])
    return 0


def down(directory: Path | None = None, prefix: str | None = None) -> DownReport:
    """Remove the lab: recorded processes, marked processes, lab namespaces, lab files.

    Works from the state file when there is one and by sweeping (namespaces named
    `<prefix>-*`, processes marked `METALLB_LAB_ID=<prefix>`) either way, so it also cleans up
    after a crash. Idempotent.
    """
    directory = directory or lab_dir()
    prefix = prefix or lab_prefix()
    reason = netns.available()
    if reason is not None:
        raise LabError(f"lab down: {reason}")
    with signals_deferred():  # a half-removed lab helps nobody: finish, then stop
        return _down(directory, prefix)


def _down(directory: Path, prefix: str) -> DownReport:
    try:
        state = LabState.load(directory)
    except LabError:
        state = None
    recorded = state.processes if state else []
    stopped: list[int] = []
    # Components first, while the API server and the portal still answer their goodbyes;
    # the router after the speakers (it sees their Cease, not a hold timer).
    for roles in (("speaker", "controller", "backend"), ("portal", "bgpd", "bfdd", "zebra")):
        stopped += processes.stop((p.pid, p.start_time) for p in recorded if p.role in roles)
    # The API server last; kube-apiserver's wrapper stops it and etcd, which takes seconds.
    stopped += processes.stop(
        ((p.pid, p.start_time) for p in recorded if p.role == "apiserver"),
        grace=APISERVER_STOP_GRACE,
    )
    stopped += processes.stop((p.pid, p.start_time) for p in recorded)
    stopped += processes.stop((pid, None) for pid in processes.marked_pids(prefix))
    removed = netns.sweep(prefix, only_dead_owners=False)
    router.remove_directory(directory)
    _remove_files(directory)
    return DownReport(
        stopped=tuple(sorted(set(stopped))),
        namespaces=tuple(removed),
        leftover_namespaces=tuple(netns.list_namespaces(prefix)),
        leftover_processes=tuple(processes.marked_pids(prefix)),
    )


def _remove_files(directory: Path) -> None:
    """Only what the lab writes: the directory may be a user's METALLB_LAB_DIR."""
    for name in (
        STATE_FILE,
        "state.tmp",
        "kubeconfig",
        credentials.NODE_KUBECONFIG,
        credentials.CONTROLLER_KUBECONFIG,
    ):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    for name in (CONTROL_PLANE_DIR, credentials.MANIFESTS_DIR):
        shutil.rmtree(directory / name, ignore_errors=True)
    logs = directory / "logs"
    if logs.is_dir():
        for f in logs.glob("*.log"):
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            logs.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()
