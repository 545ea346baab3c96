"""BGP-4 wire codec: bytes in, values out, no I/O.

Covers what an active, announce-only speaker needs (RFC 4271 BGP-4, RFC 4760 multiprotocol
IPv6, RFC 6793 4-octet AS, RFC 2918/7313 route refresh, RFC 4724 graceful restart, RFC 1997
communities, RFC 4486/8203 Cease subcodes). Decoding validates per RFC 4271 section 6 and
raises exactly one exception type, :class:`BgpError`, which carries the NOTIFICATION the session
must send back: a peer that sends garbage gets told what was wrong instead of seeing the
connection vanish. Malformed path attributes in an UPDATE that can be skipped follow RFC 7606
instead: the UPDATE is returned with its `problems` ("treat-as-withdraw" or "attribute
discard") and the session stays up.

One module per concern, this package re-exports them all (`from metallb_py.bgp import messages
as m` is the import surface of the session and the tests):

| module | concern |
|---|---|
| `wire` | header constants, type and attribute numbers, framing |
| `notification` | error codes and names, NOTIFICATION, `BgpError` |
| `header` | header validation, KEEPALIVE, ROUTE-REFRESH |
| `open_message` | OPEN and capabilities |
| `update` | a received UPDATE as values, RFC 7606 problems |
| `update_decode` | UPDATE decoding with RFC 7606 error handling |
| `update_encode` | routes, path attributes, packing into 4096-byte UPDATEs |
| `decode` | `decode_message`: one whole message of any type |

The codec imports nothing from the rest of the product: it sits below the config (see
`update_encode` for how communities cross that line).
"""

from metallb_py.bgp.messages.decode import (
    Message,
    decode_message,
)
from metallb_py.bgp.messages.header import (
    Keepalive,
    RouteRefresh,
    decode_header,
    decode_route_refresh,
    encode_keepalive,
    encode_route_refresh,
)
from metallb_py.bgp.messages.notification import (
    ERROR_NAMES,
    SUBCODE_NAMES,
    BgpError,
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    HeaderSubcode,
    Notification,
    OpenSubcode,
    RouteRefreshSubcode,
    UpdateSubcode,
    encode_notification,
    error_name,
)
from metallb_py.bgp.messages.open_message import (
    GR_FORWARDING_STATE,
    GR_RESTART_STATE,
    MAX_RESTART_TIME,
    Capability,
    CapabilityCode,
    GracefulRestart,
    Open,
    decode_open,
    encode_open,
    validate_peer_open,
)
from metallb_py.bgp.messages.update import (
    AsPathSegment,
    ErrorAction,
    MpReach,
    MpUnreach,
    PathAttributes,
    RawAttribute,
    Update,
    UpdateProblem,
)
from metallb_py.bgp.messages.update_decode import (
    decode_update,
)
from metallb_py.bgp.messages.update_encode import (
    MAX_COMMUNITIES,
    CommunityValue,
    Route,
    RouteAttributes,
    UpdateContext,
    common_attributes,
    encode_attribute,
    encode_end_of_rib,
    encode_prefix,
    encode_update,
    pack_announcements,
    pack_withdrawals,
)
from metallb_py.bgp.messages.wire import (
    AFI_IPV4,
    AFI_IPV6,
    AS_TRANS,
    BGP_VERSION,
    FLAG_EXTENDED_LENGTH,
    FLAG_OPTIONAL,
    FLAG_PARTIAL,
    FLAG_TRANSITIVE,
    HEADER_LEN,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MARKER,
    MAX_MESSAGE_LEN,
    SAFI_UNICAST,
    AfiSafi,
    AttrType,
    IPAddress,
    IPNetwork,
    MessageType,
    Origin,
    SegmentType,
    frame,
)

__all__ = [
    "AFI_IPV4",
    "AFI_IPV6",
    "AS_TRANS",
    "BGP_VERSION",
    "ERROR_NAMES",
    "FLAG_EXTENDED_LENGTH",
    "FLAG_OPTIONAL",
    "FLAG_PARTIAL",
    "FLAG_TRANSITIVE",
    "GR_FORWARDING_STATE",
    "GR_RESTART_STATE",
    "HEADER_LEN",
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "MARKER",
    "MAX_COMMUNITIES",
    "MAX_MESSAGE_LEN",
    "MAX_RESTART_TIME",
    "SAFI_UNICAST",
    "SUBCODE_NAMES",
    "AfiSafi",
    "AsPathSegment",
    "AttrType",
    "BgpError",
    "Capability",
    "CapabilityCode",
    "CeaseSubcode",
    "CommunityValue",
    "ErrorAction",
    "ErrorCode",
    "FsmSubcode",
    "GracefulRestart",
    "HeaderSubcode",
    "IPAddress",
    "IPNetwork",
    "Keepalive",
    "Message",
    "MessageType",
    "MpReach",
    "MpUnreach",
    "Notification",
    "Open",
    "OpenSubcode",
    "Origin",
    "PathAttributes",
    "RawAttribute",
    "Route",
    "RouteAttributes",
    "RouteRefresh",
    "RouteRefreshSubcode",
    "SegmentType",
    "Update",
    "UpdateContext",
    "UpdateProblem",
    "UpdateSubcode",
    "common_attributes",
    "decode_header",
    "decode_message",
    "decode_open",
    "decode_route_refresh",
    "decode_update",
    "encode_attribute",
    "encode_end_of_rib",
    "encode_keepalive",
    "encode_notification",
    "encode_open",
    "encode_prefix",
    "encode_route_refresh",
    "encode_update",
    "error_name",
    "frame",
    "pack_announcements",
    "pack_withdrawals",
    "validate_peer_open",
]
