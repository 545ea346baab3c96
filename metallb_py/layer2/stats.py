"""Layer2 counters, kept as plain per-IP dicts so the layer2 engine needs no metrics library.

A Prometheus collector exports them as `metallb_layer2_requests_received{ip}`,
`metallb_layer2_responses_sent{ip}` and `metallb_layer2_gratuitous_sent{ip}` (no `_total`, as
upstream). Writers run on the event-loop thread; `snapshot()` may be called from any thread
(copying a dict is one C-level operation under the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

METRIC_NAMES = {
    "requests_received": "metallb_layer2_requests_received",
    "responses_sent": "metallb_layer2_responses_sent",
    "gratuitous_sent": "metallb_layer2_gratuitous_sent",
}


@dataclass
class Layer2Stats:
    """Counters keyed by the canonical text of the service IP (the metric's `ip` label)."""

    requests_received: dict[str, int] = field(default_factory=dict)
    responses_sent: dict[str, int] = field(default_factory=dict)
    gratuitous_sent: dict[str, int] = field(default_factory=dict)

    def got_request(self, ip: str) -> None:
        self.requests_received[ip] = self.requests_received.get(ip, 0) + 1

    def sent_response(self, ip: str) -> None:
        self.responses_sent[ip] = self.responses_sent.get(ip, 0) + 1

    def sent_gratuitous(self, ip: str, frames: int = 1) -> None:
        self.gratuitous_sent[ip] = self.gratuitous_sent.get(ip, 0) + frames

    def forget(self, ip: str) -> None:
        """Drop an IP's series once it is withdrawn, so no stale series stays exported."""
        self.requests_received.pop(ip, None)
        self.responses_sent.pop(ip, None)
        self.gratuitous_sent.pop(ip, None)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Copies keyed by the metric's attribute name (see METRIC_NAMES)."""
        return {
            "requests_received": self.requests_received.copy(),
            "responses_sent": self.responses_sent.copy(),
            "gratuitous_sent": self.gratuitous_sent.copy(),
        }
