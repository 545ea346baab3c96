"""IP allocation for LoadBalancer Services: pools, sharing, assign/allocate/release and the
pool gauges (`allocator.Allocator`); pure, no I/O."""

from metallb_py.allocator.allocation import (
    Allocation,
    AllocatorError,
    Blocker,
    PoolChange,
    PoolStats,
    Port,
    Usage,
)
from metallb_py.allocator.allocator import Allocator
from metallb_py.allocator.ips import (
    Family,
    FamilyError,
    family_of,
    family_of_strings,
    parse_ip_or_none,
)
from metallb_py.allocator.pools import MAX_INT64, addresses_total

__all__ = [
    "MAX_INT64",
    "Allocation",
    "Allocator",
    "AllocatorError",
    "Blocker",
    "Family",
    "FamilyError",
    "PoolChange",
    "PoolStats",
    "Port",
    "Usage",
    "addresses_total",
    "family_of",
    "family_of_strings",
    "parse_ip_or_none",
]
