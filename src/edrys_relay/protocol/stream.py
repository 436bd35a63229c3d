"""``/stream`` video-relay messages (protocols.md §3), plus our binary frame form.

Messages are JSON objects. A binary WebSocket message is parsed as UTF-8 JSON too, as the Node
relay does, unless it starts with :data:`MAGIC`: then it is a *binary frame*, a 16-byte header
followed by the raw image (big-endian)::

    offset  size  field
    0       4     magic  b"ESF1"
    4       1     format 1 = JPEG, 2 = WebP, 3 = PNG
    5       3     reserved, zero
    8       8     timestamp, IEEE-754 double, ms since the Unix epoch (0 = unknown)
    16      ...   the image file bytes (non-empty, starting with the format's signature)

Unparsable JSON and unknown ``type`` values are ignored (older clients sent ``keep-alive``).
Every reply string below is byte-for-byte what edrys-websocket-server sends; replies that only
we send (room id too long or not a string, room full, bad binary frame) follow the same shape.
Decoding never raises: what the relay must do with a message is in the type it returns.
"""

from __future__ import annotations

import binascii
import json
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

MAGIC = b"ESF1"
HEADER = struct.Struct(">4sB3sd")
HEADER_SIZE = HEADER.size  # 16
_NO_RESERVED = b"\x00\x00\x00"
MAX_CONTROL_MESSAGE = 64 * 1024
"""Longest message other than a frame that is worth parsing (a viewer never needs more)."""
MAX_ECHOED_STRING = 64
"""A ``ping`` timestamp is echoed only if it is a finite number or a string this short."""


class ImageFormat(IntEnum):
    JPEG = 1
    WEBP = 2
    PNG = 3


MIME_TYPES = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.WEBP: "image/webp",
    ImageFormat.PNG: "image/png",
}
_FORMATS_BY_MIME = {mime: fmt for fmt, mime in MIME_TYPES.items()}


def _has_signature(image_format: ImageFormat, head: bytes) -> bool:
    """Whether ``head`` (the first 12 image bytes) starts like a file of that format."""
    if image_format is ImageFormat.JPEG:
        return head[:3] == b"\xff\xd8\xff"
    if image_format is ImageFormat.WEBP:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return head[:8] == b"\x89PNG\r\n\x1a\n"


# Error replies (protocols.md §3.2; the first three are the Node relay's exact strings).
SOURCE_NEEDS_ROOM = "Room ID is required to register as source"
JOIN_NEEDS_ROOM = "Room ID is required to join a room"
ROOM_ID_NOT_STRING = "Room ID must be a string"
ROOM_ID_TOO_LONG = "Room ID is too long"


def room_has_source(room_id: str) -> str:
    return f"Room {room_id} already has an active source"


def room_is_full(room_id: str) -> str:
    return f"Room {room_id} is full"


def not_authorized(room_id: str) -> str:
    return f"Not authorized for room {room_id}"


# -- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterSource:
    room_id: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    room_id: str
    binary: bool | None
    """``"binary": true`` asks for binary frames, ``false`` for JSON; None keeps the choice."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A ``frame`` message (JSON or binary); only forwarded if its sender is a source."""

    frame: RelayFrame


@dataclass(frozen=True, slots=True)
class Ping:
    client_timestamp: Any
    """Echoed as ``clientTimestamp``; None (key left out) if absent or not safe to echo."""


@dataclass(frozen=True, slots=True)
class PongResponse:
    server_timestamp: float


@dataclass(frozen=True, slots=True)
class Stats:
    """What a client reports about itself; only finite numbers are kept."""

    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class Rejected:
    """Answer with ``{"type":"error","message": message}`` and change nothing."""

    message: str
    bad_frame: bool = False
    """A malformed binary frame (counted apart from the other refusals)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


StreamMessage = RegisterSource | JoinRoom | Frame | Ping | PongResponse | Stats | Rejected | Ignored


def decode_stream_message(message: str | bytes, *, max_room_id: int = 256) -> StreamMessage:
    """Classify one received WebSocket message (``str``: text frame, ``bytes``: binary)."""
    if isinstance(message, bytes):
        if message[:4] == MAGIC:
            return decode_binary_frame(message)
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            return Ignored("binary message is neither a binary frame nor UTF-8 JSON")
    else:
        text = message
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Ignored("not JSON")
    if not isinstance(value, dict):
        return Ignored("not a JSON object")
    message_type = value.get("type")
    handler = _HANDLERS.get(message_type) if isinstance(message_type, str) else None
    if handler is None:
        return Ignored("unknown type")
    return handler(value, text, max_room_id)


def _reject_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON; JavaScript's JSON.parse refuses them too."""
    raise ValueError(f"{name} is not JSON")


def _register(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    room_id = _room_id(value.get("roomId"), SOURCE_NEEDS_ROOM, max_room_id)
    return room_id if isinstance(room_id, Rejected) else RegisterSource(room_id)


def _join(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    room_id = _room_id(value.get("roomId"), JOIN_NEEDS_ROOM, max_room_id)
    if isinstance(room_id, Rejected):
        return room_id
    binary = value.get("binary")
    return JoinRoom(room_id, binary if isinstance(binary, bool) else None)


def _frame(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    data = value.get("data")
    if not _js_truthy(data):
        return Ignored("frame without data")
    return Frame(RelayFrame(json_text=text.encode()))


def _ping(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    timestamp = value.get("timestamp")
    safe = _finite(timestamp) is not None or (
        isinstance(timestamp, str) and len(timestamp) <= MAX_ECHOED_STRING
    )
    return Ping(timestamp if safe else None)


def _pong_response(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    server_timestamp = _finite(value.get("serverTimestamp"))
    if server_timestamp is None:
        return Ignored("pong-response without a numeric serverTimestamp")
    return PongResponse(server_timestamp)


def _stats(value: dict[str, Any], text: str, max_room_id: int) -> StreamMessage:
    numbers = {key: _finite(value.get(key)) for key in STATS_KEYS}
    return Stats({key: number for key, number in numbers.items() if number is not None})


STATS_KEYS = ("fps", "bufferSize", "dropped")

_HANDLERS = {
    "register-source": _register,
    "join-room": _join,
    "frame": _frame,
    "ping": _ping,
    "pong-response": _pong_response,
    "stats": _stats,
}


def _room_id(value: Any, missing: str, max_room_id: int) -> str | Rejected:
    if not _js_truthy(value):
        return Rejected(missing)
    if not isinstance(value, str):
        return Rejected(ROOM_ID_NOT_STRING)
    if len(value) > max_room_id:
        return Rejected(ROOM_ID_TOO_LONG)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape
        return Rejected(ROOM_ID_NOT_STRING)
    return value


def _js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``[]`` and ``{}`` are truthy there)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def _finite(value: Any) -> float | None:
    """The value as a float if it is a finite JSON number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# -- binary frames --------------------------------------------------------------------------------


def decode_binary_frame(message: bytes) -> Frame | Rejected:
    """Validate a binary frame (see the module docstring for the layout)."""
    if len(message) <= HEADER_SIZE:
        return _bad_frame("too short")
    _magic, fmt, reserved, timestamp = HEADER.unpack_from(message)
    if fmt not in MIME_TYPES:
        return _bad_frame("unknown image format")
    if reserved != _NO_RESERVED:
        return _bad_frame("reserved bytes must be zero")
    if not (math.isfinite(timestamp) and timestamp >= 0):
        return _bad_frame("bad timestamp")
    image_format = ImageFormat(fmt)
    if not _has_signature(image_format, message[HEADER_SIZE : HEADER_SIZE + 12]):
        return _bad_frame(f"the image is not {MIME_TYPES[image_format]}")
    return Frame(RelayFrame(binary=message))


def _bad_frame(why: str) -> Rejected:
    return Rejected(f"Invalid binary frame: {why}", bad_frame=True)


def encode_binary_frame(image_format: ImageFormat, image: bytes, timestamp: float = 0.0) -> bytes:
    return HEADER.pack(MAGIC, image_format, _NO_RESERVED, timestamp) + image


def data_url_to_binary(data: str, timestamp: float) -> bytes | None:
    """``data:image/jpeg;base64,...`` as a binary frame; None if it is not such a URL."""
    if not data.startswith("data:"):
        return None
    mime, marker, encoded = data[5:].partition(";base64,")
    image_format = _FORMATS_BY_MIME.get(mime)
    if image_format is None or not marker:
        return None
    try:
        image = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if not image:
        return None
    return encode_binary_frame(image_format, image, timestamp)


def binary_to_json(frame: bytes) -> bytes:
    """A validated binary frame as the JSON ``frame`` message Edrys viewers understand."""
    _magic, fmt, _reserved, timestamp = HEADER.unpack_from(frame)
    mime = MIME_TYPES[ImageFormat(fmt)].encode()
    image = memoryview(frame)[HEADER_SIZE:]
    parts = [b'{"type":"frame","data":"data:', mime, b";base64,", binascii.b2a_base64(image)[:-1]]
    if timestamp:
        parts += [b'","timestamp":', json.dumps(_number(timestamp)).encode(), b"}"]
    else:
        parts.append(b'"}')
    return b"".join(parts)


class RelayFrame:
    """One source frame in the two wire forms, each built at most once.

    Encode once, send N times: the original message is kept as it came (JSON text as UTF-8
    bytes, or the binary frame), and the other form is made on first demand, then shared by
    every viewer that wants it.
    """

    __slots__ = ("_binary", "_json", "_made_binary", "from_binary", "size")

    def __init__(self, *, json_text: bytes | None = None, binary: bytes | None = None) -> None:
        assert (json_text is None) != (binary is None), "exactly one original form"
        self._json = json_text
        self._binary = binary
        self._made_binary = binary is not None
        self.from_binary = binary is not None
        """Whether the source sent the binary form."""
        self.size = len(json_text or binary or b"")
        """Bytes of the original message (the only copy kept until another form is asked for)."""

    def as_json(self) -> bytes:
        """The JSON text (UTF-8): the original text for a JSON source."""
        if self._json is None:
            assert self._binary is not None
            self._json = binary_to_json(self._binary)
        return self._json

    def as_binary(self) -> bytes | None:
        """The binary frame; None if a JSON source's ``data`` is not a base64 image URL."""
        if not self._made_binary:
            self._made_binary = True
            assert self._json is not None
            value = json.loads(self._json)  # valid: it was parsed on arrival
            data = value.get("data")
            if isinstance(data, str):
                timestamp = _finite(value.get("timestamp")) or 0.0
                self._binary = data_url_to_binary(data, timestamp)
        return self._binary

    def original(self) -> bytes:
        """The message as the source sent it (binary if ``from_binary``, else JSON text)."""
        original = self._binary if self.from_binary else self._json
        assert original is not None
        return original

    def for_viewer(self, binary: bool) -> tuple[bytes, bool]:
        """What to send to a viewer, and whether it goes in a text frame."""
        if binary:
            payload = self.as_binary()
            if payload is not None:
                return payload, False
        return self.as_json(), True


# -- server messages ------------------------------------------------------------------------------


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _number(value: float) -> int | float:
    """Integral floats as ints, so numbers print as JavaScript's JSON.stringify prints them."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def encode_info(sources: list[str] | None, clients: int) -> str:
    """The greeting; ``sources`` None leaves the list of active rooms out."""
    info: dict[str, Any] = {"type": "info", "message": "Connected to WebSocket streaming server"}
    if sources is not None:
        info["sources"] = sources
    info["clients"] = clients
    return _dumps(info)


def encode_error(message: str) -> str:
    return _dumps({"type": "error", "message": message})


def encode_source_registered(room_id: str) -> str:
    return _dumps({"type": "source-registered", "roomId": room_id})


def encode_source_available(room_id: str) -> str:
    return _dumps({"type": "source-available", "roomId": room_id})


def encode_source_disconnected(room_id: str) -> str:
    return _dumps({"type": "source-disconnected", "roomId": room_id})


def encode_pong(now_ms: int, client_timestamp: Any) -> str:
    pong: dict[str, Any] = {"type": "pong", "timestamp": now_ms}
    if client_timestamp is not None:
        pong["clientTimestamp"] = client_timestamp
    return _dumps(pong)


def encode_ping(now_ms: int, *, clients: int, fps: float, dropped: int) -> str:
    """The 5-second keep-alive; ``dropped`` (ours) counts frames this client did not get."""
    stats = {"clients": clients, "fps": _number(round(fps, 2)), "dropped": dropped}
    return _dumps({"type": "ping", "timestamp": now_ms, "stats": stats})


__all__ = [
    "HEADER_SIZE",
    "JOIN_NEEDS_ROOM",
    "MAGIC",
    "MAX_CONTROL_MESSAGE",
    "ROOM_ID_NOT_STRING",
    "ROOM_ID_TOO_LONG",
    "SOURCE_NEEDS_ROOM",
    "Frame",
    "Ignored",
    "ImageFormat",
    "JoinRoom",
    "Ping",
    "PongResponse",
    "RegisterSource",
    "Rejected",
    "RelayFrame",
    "Stats",
    "StreamMessage",
    "binary_to_json",
    "data_url_to_binary",
    "decode_binary_frame",
    "decode_stream_message",
    "encode_binary_frame",
    "encode_error",
    "encode_info",
    "encode_ping",
    "encode_pong",
    "encode_source_available",
    "encode_source_disconnected",
    "encode_source_registered",
    "room_has_source",
    "room_is_full",
]
