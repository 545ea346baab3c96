"""Deprecated import path, kept only until tests/e2e/test_shutdown.py imports these from
`metallb_lab.lab.commands` (the module that was here is split into state, preflight, commands,
status, running, lifecycle; docs/lab.md, "Code"). Nothing else may import from here."""

from metallb_lab.lab.commands import node_kubeconfig, portal_command, speaker_args, speaker_env

__all__ = ["node_kubeconfig", "portal_command", "speaker_args", "speaker_env"]
