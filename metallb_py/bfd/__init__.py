"""Native BFD (RFC 5880 asynchronous mode; RFC 5881 single hop, RFC 5883 multihop) for the BGP
speaker: `packet` (the control packet codec) and `session` (the state machine) are pure;
`transport` runs them on UDP sockets. docs/bgp.md, "BFD"."""
