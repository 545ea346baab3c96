"""JSON log lines as MetalLB writes them: `ts` (UTC), `caller`, `level`, `msg` and
structured keys such as `op`, `event`, `error`, `service`. One line per record on stdout, so
`kubectl logs` output stays machine-readable."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any

LEVELS = {
    "all": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 10,
}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "caller": f"{os.path.basename(record.pathname)}:{record.lineno}",
            "level": _LEVEL_NAMES.get(record.levelno, "info"),
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        line["msg"] = record.getMessage()
        if record.exc_info:
            line["error"] = line.get("error") or self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=False)


def setup(level: str) -> None:
    """Route every logger to stdout as JSON at the MetalLB `--log-level`."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # The HTTP client libraries are chatty at debug level and say nothing users need.
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(LEVELS[level], logging.WARNING))


def kv(**fields: Any) -> dict[str, Any]:
    """`extra=` for structured keys: `log.info("msg", extra=kv(op="setConfig"))`."""
    return {k: v for k, v in fields.items() if v is not None}
