"""Layer2 mode: ARP/NDP responders and gratuitous announcements (docs/layer2.md).

The speaker drives one `announcer.Announcer` per node with `announce(service_key, ips)` and
`withdraw(service_key)`; counters live in `stats.Layer2Stats` for the metrics exporter. The
frame codec (`frames`) and the announcement rules (`state`) are pure; this `__init__` imports
nothing, so importing them does not open the responders' socket machinery.
"""
