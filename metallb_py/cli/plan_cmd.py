"""`metallb-py plan`: what would this config (change) do to these Services?

Exit codes: 0 accepted, 1 refused or a config is invalid, 2 usage error or unreadable file.
The replay itself is `metallb_py.controller.plan`; this module only reads files and prints.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from metallb_py.cli.config_cmd import locate_problem
from metallb_py.cli.exits import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from metallb_py.cli.files import decode_input, read_input, shown
from metallb_py.cli.options import bgp_type_option, text_or_json_option
from metallb_py.config import BgpType, Config, ConfigError, parse_config, read_config_document
from metallb_py.config.document import ConfigDocument
from metallb_py.controller.plan import (
    MAX_SERVICES_BYTES,
    PlanProblem,
    ServicesFileError,
    invalid_config,
    load_services,
    render_text,
    run_plan,
    services_of,
)


def _load_config(path: str, which: str, bgp_type: BgpType) -> tuple[Config | None, list[str]]:
    raw = read_input(path)
    document: ConfigDocument | None = None
    try:
        text = decode_input(raw)
        document = read_config_document(text)
        return parse_config(document.text, bgp_type), []
    except ConfigError as exc:
        problems = [p if document is None else locate_problem(document, p) for p in exc.problems]
        return None, [f"{which} config {shown(path)}: {p}" for p in problems]


def _read_services(path: str) -> tuple[list[dict[str, Any]], list[PlanProblem]]:
    raw = read_input(path, MAX_SERVICES_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        click.echo(f"{shown(path)}: cannot read: not UTF-8 text (byte {exc.start})", err=True)
        sys.exit(EXIT_USAGE)
    try:
        return load_services(text)
    except ServicesFileError as exc:
        click.echo(f"{shown(path)}: cannot read Services: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _read_live(
    kubeconfig: str | None, namespace: str, name: str, bgp_type: BgpType
) -> tuple[list[Any], Config | None, list[str]]:
    """Services (a v1 List) and the config in force, read from the cluster: the last accepted
    config the controller stored, else the ConfigMap's (an older controller, or none accepted
    yet)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from metallb_py.k8s import accepted
    from metallb_py.k8s.client import ClientConfigError, api_client
    from metallb_py.k8s.configmap import load_configmap

    def read_configmap(configmap_name: str) -> dict[str, Any] | None:
        try:
            raw: Any = core.read_namespaced_config_map(
                configmap_name, namespace, _preload_content=False, _request_timeout=30
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None
        found: dict[str, Any] = json.loads(raw.data)
        return found

    try:
        api = api_client(kubeconfig)
    except ClientConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    core = client.CoreV1Api(api)
    try:
        resp: Any = core.list_service_for_all_namespaces(
            _preload_content=False, _request_timeout=30
        )
        services = json.loads(resp.data)
        configmap = read_configmap(name)
        stored = accepted.read_stored(read_configmap(accepted.store_name(name)), bgp_type)
    except ApiException as exc:
        click.echo(f"cannot read from the cluster: {exc.status} {exc.reason}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        click.echo(f"cannot reach the cluster: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        api.close()
    for item in services.get("items") or []:
        item.setdefault("apiVersion", "v1")
        item.setdefault("kind", "Service")
    services["kind"], services["apiVersion"] = "List", "v1"
    if stored.load is not None and stored.load.config is not None:
        if configmap is None or load_configmap(configmap, bgp_type).text != stored.text:
            click.echo(
                f"note: the config in force is the last accepted one"
                f" ({namespace}/{accepted.store_name(name)}), not the ConfigMap's",
                err=True,
            )
        return [services], stored.load.config, []
    load = load_configmap(configmap, bgp_type)
    problems = []
    if load.missing:
        click.echo(f"note: no ConfigMap {namespace}/{name}: nothing is in force yet", err=True)
    elif load.config is None:
        problems = [f"current config {namespace}/{name}: {p}" for p in load.problems]
    return [services], load.config, problems


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    required=True,
    metavar="NEW",
    help="The config to plan for: config YAML or a ConfigMap manifest (- for stdin).",
)
@click.option(
    "--services",
    "services_path",
    default=None,
    metavar="SERVICES",
    help="Services: a v1 List (kubectl get svc -A -o yaml) or multi-document YAML/JSON.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Read the Services and the current ConfigMap from the cluster (instead of "
    "--services/--current): what would applying NEW do right now?",
)
@click.option("--kubeconfig", default=None, help="With --live: kubeconfig (default in-cluster).")
@click.option(
    "--namespace",
    default="metallb-system",
    show_default=True,
    help="With --live: namespace of the MetalLB ConfigMap.",
)
@click.option(
    "--configmap",
    default="config",
    show_default=True,
    help="With --live: name of the MetalLB ConfigMap.",
)
@click.option(
    "--current",
    "current_path",
    default=None,
    metavar="OLD",
    help="The config in force now; the plan then says whether switching to NEW is accepted.",
)
@bgp_type_option("Validate the configs for the native BGP speaker or the FRR one.")
@text_or_json_option("text for people; json (documented in docs/plan.md) for scripts.")
def plan(
    config_path: str,
    services_path: str | None,
    live: bool,
    kubeconfig: str | None,
    namespace: str,
    configmap: str,
    current_path: str | None,
    bgp_type: str,
    output: str,
) -> None:
    """Replay what the MetalLB controller would do with these Services.

    Services that already have addresses in status are registered first; then every Service
    is reconciled, oldest first. Without --current: each Service's addresses and events under
    NEW. With --current: reconcile under OLD, then switch to NEW, and report whether the
    switch is accepted or every Service that blocks it (and why).

    With --live the Services and the config in force come from the cluster (--kubeconfig,
    --namespace, --configmap), so you can ask before `kubectl apply`.

    Exit 0 when accepted, 1 when refused or a config is invalid, 2 on usage errors or
    unreadable files (or an unreachable cluster).
    """
    if live and (services_path is not None or current_path is not None):
        click.echo(
            "--live reads Services and the current config from the cluster; "
            "do not combine it with --services or --current",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    if not live and services_path is None:
        click.echo("give --services SERVICES, or --live to read them from the cluster", err=True)
        sys.exit(EXIT_USAGE)
    if [config_path, services_path, current_path].count("-") > 1:
        click.echo("only one of --config, --services, --current can be - (stdin)", err=True)
        sys.exit(EXIT_USAGE)
    kind = BgpType(bgp_type)
    new, problems = _load_config(config_path, "new", kind)
    current: Config | None = None
    if live:
        documents, current, current_problems = _read_live(kubeconfig, namespace, configmap, kind)
        problems += current_problems
        services, input_problems = services_of(documents)
    else:
        assert services_path is not None
        services, input_problems = _read_services(services_path)
    if current_path is not None:
        current, current_problems = _load_config(current_path, "current", kind)
        problems += current_problems

    if problems or new is None:
        result = invalid_config(problems)
    else:
        result = run_plan(new, services, current, input_problems)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_text(result), nl=False)
    sys.exit(EXIT_OK if result.accepted else EXIT_INVALID)
