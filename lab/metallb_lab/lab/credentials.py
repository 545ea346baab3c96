"""Who the lab's controller and speakers are on its API server.

The embedded server authenticates nobody, so both get kubeconfigs without a user. On
kube-apiserver the lab installs the manifests as a user does (`kubectl apply -f manifests/`,
with the admin kubeconfig) and hands the controller and the speakers tokens of the
ServiceAccounts the manifests create: the manifests' RBAC is all they get, so a call the
manifests do not allow fails in the lab too.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

from metallb_lab.lab.commands import node_kubeconfig, write_kubeconfig
from metallb_lab.lab.kube import KubeconfigError, RestClient, read_kubeconfig
from metallb_lab.lab.layout import METALLB_NAMESPACE, ApiBackend
from metallb_lab.lab.state import LabError

MANIFESTS_DIR = "manifests"
CONTROLLER_KUBECONFIG = "controller-kubeconfig"
NODE_KUBECONFIG = "node-kubeconfig"
CONTROLLER_ACCOUNT = "controller"
SPEAKER_ACCOUNT = "speaker"
"""The ServiceAccounts of manifests/metallb.yaml."""
TOKEN_SECONDS = 7 * 24 * 3600
"""Bound tokens' lifetime: a lab left up longer needs `lab down` and `lab up`."""
APPLY_TIMEOUT = 120.0


@dataclass(frozen=True)
class ComponentKubeconfigs:
    controller: Path
    node: Path
    """The speakers', through the portal in each node namespace."""


def component_kubeconfigs(
    backend: ApiBackend, directory: Path, admin_kubeconfig: Path, rest: RestClient
) -> ComponentKubeconfigs:
    """Write the controller's and the speakers' kubeconfigs into `directory`; on
    kube-apiserver first install the manifests (their ServiceAccounts and RBAC)."""
    if backend is ApiBackend.EMBEDDED:
        return ComponentKubeconfigs(admin_kubeconfig, node_kubeconfig(directory / NODE_KUBECONFIG))
    install_manifests(directory / MANIFESTS_DIR, admin_kubeconfig)
    ca_data = _ca_data(admin_kubeconfig)
    tokens = {
        account: rest.create_token(METALLB_NAMESPACE, account, TOKEN_SECONDS)
        for account in (CONTROLLER_ACCOUNT, SPEAKER_ACCOUNT)
    }
    return ComponentKubeconfigs(
        controller=write_kubeconfig(
            directory / CONTROLLER_KUBECONFIG,
            rest.url,
            ca_data=ca_data,
            token=tokens[CONTROLLER_ACCOUNT],
        ),
        node=node_kubeconfig(
            directory / NODE_KUBECONFIG, ca_data=ca_data, token=tokens[SPEAKER_ACCOUNT]
        ),
    )


def install_manifests(target: Path, admin_kubeconfig: Path) -> None:
    """`kubectl apply -f manifests/`: the product's shipped manifests (what `manifests/` in the
    repository holds, written out so an installed lab needs no checkout), applied with the
    release's kubectl."""
    from metallb_lab.control_plane import ControlPlaneError, binaries
    from metallb_py.addons.manifests import write_manifests

    try:
        bin_dir = binaries(required=True)
    except ControlPlaneError as e:
        raise LabError(str(e)) from None
    assert bin_dir is not None
    target.mkdir(exist_ok=True)
    write_manifests(target)
    argv = [str(bin_dir / "kubectl"), "--kubeconfig", str(admin_kubeconfig)]
    done = subprocess.run(
        [*argv, "apply", "-f", str(target)],
        capture_output=True,
        text=True,
        timeout=APPLY_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"kubectl apply -f {target} failed:\n{done.stderr.strip()}")


def _ca_data(admin_kubeconfig: Path) -> str:
    try:
        access = read_kubeconfig(admin_kubeconfig)
    except KubeconfigError as e:
        raise LabError(str(e)) from None
    if access.ca_pem is None:
        raise LabError(f"{admin_kubeconfig} names no certificate authority")
    return base64.b64encode(access.ca_pem).decode()
