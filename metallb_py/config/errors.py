"""The one error type for a configuration that cannot be used.

A config is the user's text; every problem must point back into it (field path in the user's
terms, the offending value, the line when known) so a refusal can be fixed without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    path: str
    """Field path in the user's terms, e.g. `address-pools[1].addresses[0]`; "" for the document."""
    reason: str
    value: Any = None
    line: int | None = None
    """1-based line in the config text, when known."""

    def __str__(self) -> str:
        where = self.path or "(document)"
        text = f"{where}: {self.reason}"
        if self.line is not None:
            text += f" (line {self.line})"
        return text

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if value is not None and not isinstance(value, str | int | float | bool | list | dict):
            value = str(value)
        return {"path": self.path, "reason": self.reason, "value": value, "line": self.line}


class ConfigError(ValueError):
    """Raised by the parser with every independent problem it found."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
