"""Errors raised by the sans-I/O decoders, and the WebSocket close code each maps to.

Hierarchy::

    ProtocolError            the peer sent something we refuse (remote fault)
    ├── MalformedMessage     bytes or JSON that do not parse: 1002 protocol error
    ├── InvalidPayload       parses, but the content is rejected (e.g. a Yjs update
    │                        the CRDT decoder refuses): 1007 invalid payload data
    ├── UnsupportedData      wrong frame kind (text on a binary door, or vice versa): 1003
    ├── MessageTooBig        over a size limit: 1009
    └── PolicyViolation      over a rate, count or access limit: 1008

Only the offending connection is closed. The close reason is a short fixed phrase;
exception details are logged, never sent to the peer (RFC 6455 §7.4.1).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error caused by what a peer sent."""

    close_code = 1002
    close_reason = "protocol error"


class MalformedMessage(ProtocolError):
    """The bytes (or JSON text) do not form a valid message."""

    close_code = 1002
    close_reason = "malformed message"


class InvalidPayload(ProtocolError):
    """The message parses but its content is rejected."""

    close_code = 1007
    close_reason = "invalid payload"


class UnsupportedData(ProtocolError):
    """A text frame where binary is expected, or the reverse."""

    close_code = 1003
    close_reason = "unsupported frame type"


class MessageTooBig(ProtocolError):
    """A message, or a value inside it, exceeds a configured limit."""

    close_code = 1009
    close_reason = "message too big"


class PolicyViolation(ProtocolError):
    """A rate, count or access rule was broken."""

    close_code = 1008
    close_reason = "policy violation"


__all__ = [
    "InvalidPayload",
    "MalformedMessage",
    "MessageTooBig",
    "PolicyViolation",
    "ProtocolError",
    "UnsupportedData",
]
