"""MetalLB v0.12 configuration: parsing, validation and the typed model (docs/config.md)."""

from metallb_py.config.check_peers import NATIVE_BGP_SUPPORTS_IPV6
from metallb_py.config.document import (
    ConfigDocument,
    load_config_document,
    read_config_document,
)
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
from metallb_py.config.parser import (
    MAX_CONFIG_BYTES,
    parse_config,
    parse_config_with_warnings,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "NATIVE_BGP_SUPPORTS_IPV6",
    "AddressPool",
    "BfdProfile",
    "BgpAdvertisement",
    "BgpType",
    "Community",
    "Config",
    "ConfigDocument",
    "ConfigError",
    "IPAddress",
    "IPNetwork",
    "NodeSelector",
    "Peer",
    "Problem",
    "Protocol",
    "SelectorOperator",
    "SelectorRequirement",
    "load_config_document",
    "parse_config",
    "parse_config_with_warnings",
    "read_config_document",
    "selectors_match",
]
