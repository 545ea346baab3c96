"""Thin adapters over the `kubernetes` client: informers, the work queue, status and events."""
