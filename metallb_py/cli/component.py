"""What `controller` and `speaker` resolve the same way before starting."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from metallb_py.config import BgpType
from metallb_py.logs import LEVELS

F = TypeVar("F", bound=Callable[..., Any])


def env_option(
    *decls: str, env: str, help: str, default: str = "", type: Callable[[str], Any] = str
) -> Callable[[F], F]:
    """A flag that defaults to the environment variable `env`, as MetalLB's flags do: read when
    the command runs, an empty value counting as unset; `type` (`str` or `int`) converts it."""
    return click.option(
        *decls, type=type, default=lambda: type(os.environ.get(env) or default), help=help
    )


def common_options(namespace_holds: str) -> Callable[[F], F]:
    """The flags both components take with the same meaning (--port, --config, --kubeconfig,
    --log-level, --enable-pprof, --namespace: `resolve` reads it); `namespace_holds` says what
    the component finds in its namespace."""
    options = (
        click.option("--port", default=7472, show_default=True, help="Metrics/health HTTP port."),
        click.option(
            "--config",
            "config_name",
            default="config",
            show_default=True,
            help="ConfigMap name.",
        ),
        click.option("--kubeconfig", default=None, help="Kubeconfig path (default: in-cluster)."),
        click.option(
            "--log-level", type=click.Choice(list(LEVELS)), default="info", show_default=True
        ),
        click.option(
            "--enable-pprof", is_flag=True, help="Serve thread stacks under /debug/pprof/."
        ),
        click.option(
            "--namespace",
            default=None,
            help=f"Namespace of {namespace_holds} [env METALLB_NAMESPACE, else the pod's].",
        ),
    )

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def resolve(
    namespace: str | None, kubeconfig: str | None, log_level: str
) -> tuple[str, BgpType, Any]:
    """Set up logging; return (namespace, METALLB_BGP_TYPE, API client) or a clear error."""
    from metallb_py import logs
    from metallb_py.k8s.client import ClientConfigError, api_client, default_namespace

    logs.setup(log_level)
    ns = default_namespace(namespace, os.environ.get("METALLB_NAMESPACE"))
    if not ns:
        raise click.ClickException("unable to get namespace: set --namespace or METALLB_NAMESPACE")
    raw = os.environ.get("METALLB_BGP_TYPE") or "native"
    try:
        bgp_type = BgpType(raw)
    except ValueError:
        raise click.ClickException(f"METALLB_BGP_TYPE must be native or frr, not {raw!r}") from None
    try:
        client = api_client(kubeconfig)
    except ClientConfigError as e:
        raise click.ClickException(str(e)) from None
    return ns, bgp_type, client
