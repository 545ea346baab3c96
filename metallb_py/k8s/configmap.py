"""Reading the MetalLB config out of the ConfigMap object, shared by controller and speaker.

Both components must judge a ConfigMap the same way (spec 9.3), so this is the one place that
turns the cached object into a Config or a list of problems to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metallb_py.config import BgpType, Config, ConfigError, Problem, parse_config_with_warnings
from metallb_py.config.document import missing_config_key

CONFIG_KEY = "config"


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


def load_configmap(configmap: dict[str, Any] | None, bgp_type: BgpType) -> ConfigLoad:
    if configmap is None:
        return ConfigLoad(None, missing=True)
    data = configmap.get("data")
    if data is not None and not isinstance(data, dict):
        return ConfigLoad(None, problems=(Problem("data", "data must be a mapping"),))
    if CONFIG_KEY not in (data or {}):
        return ConfigLoad(None, problems=(missing_config_key(sorted(data or {})),))
    text = (data or {})[CONFIG_KEY]
    if not isinstance(text, str):
        return ConfigLoad(None, problems=(Problem("data.config", "config must be a string"),))
    try:
        config, warnings = parse_config_with_warnings(text, bgp_type)
    except ConfigError as e:
        return ConfigLoad(None, problems=tuple(e.problems), text=text)
    return ConfigLoad(config, warnings=warnings, text=text)
