"""The y-websocket message envelope (protocols.md §2.2): one binary frame is one message.

A frame starts with a varUint message type. Sync messages (type 0) carry a varUint sync type
and a varUint8Array payload; awareness messages (type 1) carry a varUint8Array awareness
update. Decoding returns the payload as a zero-copy slice of the frame where that matters
for the relay hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import Decoder, encode_var_string, encode_var_uint


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The sender's state vector; must be answered with a SyncStep2."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """Everything the receiver lacked relative to the state vector it answers."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental document update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """An encoded awareness update (see :mod:`edrys_relay.protocol.awareness`)."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AuthMessage:
    """y-protocols auth message; type 0 means "permission denied"."""

    auth_type: int
    reason: str


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """A request for all known awareness states."""


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type we do not speak; ignored and never forwarded (protocols.md §2.2)."""

    message_type: int


Message = (
    SyncStep1
    | SyncStep2
    | SyncUpdate
    | AwarenessMessage
    | AuthMessage
    | QueryAwareness
    | UnknownMessage
)


def decode_message(frame: bytes) -> Message:
    """Decode one y-websocket frame.

    Raises:
        MalformedMessage: on an empty frame, a bad varUint, a length that overruns the
            frame, or an unknown sync type.
    """
    decoder = Decoder(frame)
    message_type = decoder.read_var_uint()
    if message_type == MessageType.SYNC:
        sync_type = decoder.read_var_uint()
        payload = decoder.read_var_uint8array()
        if sync_type == SyncType.UPDATE:
            return SyncUpdate(payload)
        if sync_type == SyncType.STEP2:
            return SyncStep2(payload)
        if sync_type == SyncType.STEP1:
            return SyncStep1(payload)
        raise MalformedMessage(f"unknown sync type {sync_type}")
    if message_type == MessageType.AWARENESS:
        return AwarenessMessage(decoder.read_var_uint8array())
    if message_type == MessageType.AUTH:
        auth_type = decoder.read_var_uint()
        return AuthMessage(auth_type, decoder.read_var_string())
    if message_type == MessageType.QUERY_AWARENESS:
        return QueryAwareness()
    return UnknownMessage(message_type)


def _sync(sync_type: SyncType, payload: bytes) -> bytes:
    return b"".join((b"\x00", encode_var_uint(sync_type), encode_var_uint(len(payload)), payload))


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _sync(SyncType.STEP1, state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _sync(SyncType.STEP2, update)


def encode_sync_update(update: bytes) -> bytes:
    return _sync(SyncType.UPDATE, update)


def encode_awareness(update: bytes) -> bytes:
    return b"\x01" + encode_var_uint(len(update)) + update


def encode_query_awareness() -> bytes:
    return b"\x03"


def encode_auth_denied(reason: str) -> bytes:
    return b"\x02\x00" + encode_var_string(reason)


EMPTY_STATE_VECTOR = b"\x00"
EMPTY_UPDATE = b"\x00\x00"

__all__ = [
    "EMPTY_STATE_VECTOR",
    "EMPTY_UPDATE",
    "AuthMessage",
    "AwarenessMessage",
    "Message",
    "MessageType",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncType",
    "SyncUpdate",
    "UnknownMessage",
    "decode_message",
    "encode_auth_denied",
    "encode_awareness",
    "encode_query_awareness",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_sync_update",
]
