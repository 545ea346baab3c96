"""Layer2 mode: ARP/NDP responders and gratuitous announcements (spec section 5).

The speaker drives one `Announcer` per node with `announce(service_key, ips)` and
`withdraw(service_key)`; counters live in `Layer2Stats` for the metrics exporter.
"""

from metallb_py.layer2.announcer import Announcer
from metallb_py.layer2.responder import Layer2Error
from metallb_py.layer2.stats import METRIC_NAMES, Layer2Stats

__all__ = ["METRIC_NAMES", "Announcer", "Layer2Error", "Layer2Stats"]
