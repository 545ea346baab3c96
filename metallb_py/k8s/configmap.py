"""Reading the MetalLB config out of the ConfigMap object: the one judgement of a ConfigMap,
used by the controller, the speaker, `plan --live` and `doctor`.

They must all judge a ConfigMap the same way (docs/config.md), so this is the one place that
turns the object into a Config or a list of problems to publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py.config import BgpType, Config, ConfigError, Problem, parse_config_with_warnings
from metallb_py.config.document import CONFIG_KEY, missing_config_key

__all__ = ["CONFIG_KEY", "ConfigLoad", "load_configmap"]


@dataclass(frozen=True)
class ConfigLoad:
    config: Config | None
    """The parsed config; None when the ConfigMap is missing or invalid."""
    missing: bool = False
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    text: str = ""
    """The `config` text as written (kept in the accepted-config store)."""

    def summary(self, limit: int = 20) -> str:
        """The problems as one line each `field.path: reason`, for events and logs."""
        shown = [str(p) for p in self.problems[:limit]]
        more = len(self.problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more")
        return "; ".join(shown)


def load_configmap(configmap: Mapping[str, Any] | None, bgp_type: BgpType) -> ConfigLoad:
    """The config of a ConfigMap object (as the API server returns it); never raises: a
    ConfigMap without `data.config` is refused, not read as the empty config."""
    if configmap is None:
        return ConfigLoad(None, missing=True)
    if not isinstance(configmap, Mapping):
        return ConfigLoad(None, problems=(Problem("", "the ConfigMap is not an object"),))
    data = configmap.get("data") or {}
    if not isinstance(data, Mapping):
        return ConfigLoad(None, problems=(Problem("data", "data must be a mapping"),))
    if CONFIG_KEY not in data:
        return ConfigLoad(None, problems=(missing_config_key(sorted(map(str, data))),))
    text = data[CONFIG_KEY]
    if not isinstance(text, str):
        return ConfigLoad(None, problems=(Problem("data.config", "config must be a string"),))
    try:
        config, warnings = parse_config_with_warnings(text, bgp_type)
    except ConfigError as e:
        return ConfigLoad(None, problems=tuple(e.problems), text=text)
    return ConfigLoad(config, warnings=warnings, text=text)
