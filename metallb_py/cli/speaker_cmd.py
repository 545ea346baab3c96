"""`metallb-py speaker`: the flags and environment of MetalLB v0.12's speaker."""

from __future__ import annotations

import click

from metallb_py.cli.component import common_options, env_option


@click.command()
@env_option(
    "--node-name",
    env="METALLB_NODE_NAME",
    help="This node's name, as the Node object [env METALLB_NODE_NAME]. Required.",
)
@env_option(
    "--host",
    env="METALLB_HOST",
    help="Address the metrics server binds to [env METALLB_HOST; default all].",
)
@common_options(namespace_holds="the ConfigMap and speaker Pods")
@env_option(
    "--ml-bindaddr",
    env="METALLB_ML_BIND_ADDR",
    help="Membership bind address [env METALLB_ML_BIND_ADDR]; empty disables membership.",
)
@env_option(
    "--ml-bindport",
    env="METALLB_ML_BIND_PORT",
    default="7946",
    type=int,
    help="Membership UDP port [env METALLB_ML_BIND_PORT; default 7946].",
)
@env_option(
    "--ml-labels",
    env="METALLB_ML_LABELS",
    help="Label selector of the speaker Pods [env METALLB_ML_LABELS].",
)
@env_option(
    "--ml-secret-key",
    env="METALLB_ML_SECRET_KEY",
    help="Membership authentication secret [env METALLB_ML_SECRET_KEY].",
)
@click.option("--disable-epslices", is_flag=True, help="Use Endpoints instead of EndpointSlices.")
@click.option(
    "--layer2-interface",
    "layer2_interfaces",
    multiple=True,
    help="Answer ARP/NDP only on this interface (repeatable; default: every qualifying one).",
)
def speaker(
    node_name: str,
    host: str,
    port: int,
    config_name: str,
    namespace: str | None,
    kubeconfig: str | None,
    ml_bindaddr: str,
    ml_bindport: int,
    ml_labels: str,
    ml_secret_key: str,
    log_level: str,
    disable_epslices: bool,
    enable_pprof: bool,
    layer2_interfaces: tuple[str, ...],
) -> None:
    """Announce Service IPs from this node with ARP/NDP (layer2) or BGP (one per node).

    METALLB_BGP_TYPE (native|frr, default native) selects the config validation mode.
    """
    from metallb_py.cli.component import resolve
    from metallb_py.speaker.main import SpeakerSettings, run_speaker

    if not node_name:
        raise click.ClickException("--node-name (or METALLB_NODE_NAME) is required")
    ns, bgp_type, client = resolve(namespace, kubeconfig, log_level)
    settings = SpeakerSettings(
        node_name=node_name,
        namespace=ns,
        config_name=config_name,
        host=host,
        port=port,
        ml_bind_addr=ml_bindaddr,
        ml_bind_port=ml_bindport,
        ml_labels=ml_labels,
        ml_secret_key=ml_secret_key,
        disable_epslices=disable_epslices,
        bgp_type=bgp_type,
        enable_pprof=enable_pprof,
        layer2_interfaces=layer2_interfaces or None,
    )
    raise SystemExit(run_speaker(settings, client))
