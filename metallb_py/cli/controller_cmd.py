"""`metallb-py controller`: the flags and environment of MetalLB v0.12's controller."""

from __future__ import annotations

import click

from metallb_py.cli.component import common_options, env_option


@click.command()
@common_options(namespace_holds="the ConfigMap and Secret")
@env_option(
    "--ml-secret-name",
    env="METALLB_ML_SECRET_NAME",
    help="Create this memberlist Secret at start-up [env METALLB_ML_SECRET_NAME].",
)
@env_option(
    "--deployment",
    env="METALLB_DEPLOYMENT",
    help="Controller Deployment owning that Secret [env METALLB_DEPLOYMENT].",
)
@click.option("--disable-epslices", is_flag=True, help="Accepted for compatibility; unused.")
def controller(
    port: int,
    config_name: str,
    namespace: str | None,
    kubeconfig: str | None,
    ml_secret_name: str,
    deployment: str,
    log_level: str,
    disable_epslices: bool,
    enable_pprof: bool,
) -> None:
    """Allocate IPs to Services of type LoadBalancer (one replica per cluster).

    Validates the config exactly as the speakers do: METALLB_BGP_TYPE (native|frr) selects the
    mode checks, so the controller never allocates from a config the speakers refuse.
    """
    from metallb_py.cli.component import resolve
    from metallb_py.controller.main import ControllerSettings, run_controller

    ns, bgp_type, client = resolve(namespace, kubeconfig, log_level)
    settings = ControllerSettings(
        namespace=ns,
        config_name=config_name,
        kubeconfig=kubeconfig,
        port=port,
        ml_secret_name=ml_secret_name,
        deployment=deployment,
        bgp_type=bgp_type,
        enable_pprof=enable_pprof,
    )
    raise SystemExit(run_controller(settings, client))
