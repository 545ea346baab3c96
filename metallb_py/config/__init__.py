"""MetalLB v0.12 configuration: parsing, validation and the typed model (spec section 1)."""

from metallb_py.config.errors import ConfigError, Problem
from metallb_py.config.model import (
    AddressPool,
    BfdProfile,
    BgpAdvertisement,
    BgpType,
    Community,
    Config,
    IPAddress,
    IPNetwork,
    NodeSelector,
    Peer,
    Protocol,
    SelectorOperator,
    SelectorRequirement,
    selectors_match,
)

__all__ = [
    "AddressPool",
    "BfdProfile",
    "BgpAdvertisement",
    "BgpType",
    "Community",
    "Config",
    "ConfigError",
    "IPAddress",
    "IPNetwork",
    "NodeSelector",
    "Peer",
    "Problem",
    "Protocol",
    "SelectorOperator",
    "SelectorRequirement",
    "selectors_match",
]
