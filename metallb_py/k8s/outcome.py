"""How the handling of one work item ended: the contract between the pure decisions
(`controller.reconcile`, the speaker's handlers) and the work queue that acts on it
(`k8s.component.finish_item`). Its own module so the decisions import no adapter."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    """What a handler tells the queue (the retry rules are in `k8s/workqueue.py`)."""

    SUCCESS = "success"
    ERROR = "error"
    """Retry this key with backoff."""
    ERROR_NO_RETRY = "error-no-retry"
    """Log and forget."""
    REPROCESS_ALL = "reprocess-all"
    """Success, and re-queue every known key."""
