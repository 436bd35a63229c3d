"""Which door an upgrade request knocks on, decided from its request target alone.

protocols.md §2.1 and §6: ``/`` and ``/signaling`` are y-webrtc signaling; exactly ``/stream``,
``/stream/...`` or ``/stream?...`` is the stream relay (not every ``/stream*`` prefix, the Node
server's pitfall §6.3-1); every other path names a y-websocket room. Like both Node servers we
do not percent-decode the room name, so Edrys' un-encoded room ids map to the same documents.
Room names are keys, never file names; they are still validated to keep logs and storage sane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType
from urllib.parse import parse_qsl

from edrys_relay.protocol.errors import InvalidPayload

RoomName = NewType("RoomName", str)

SIGNALING_PATHS = frozenset({"", "signaling"})
STREAM_PATH = "stream"
MAX_QUERY_FIELDS = 32


@dataclass(frozen=True, slots=True)
class YjsRoute:
    room: RoomName
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignalingRoute:
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamRoute:
    subpath: str
    params: dict[str, str] = field(default_factory=dict)


Route = YjsRoute | SignalingRoute | StreamRoute


def route_request(target: str, *, max_room_length: int = 256) -> Route:
    """Map a request target (path plus optional query) to a door.

    Raises:
        InvalidPayload: an unusable room name (too long, control or non-ASCII characters).
    """
    path, _, query = target.partition("?")
    params = parse_query(query)
    name = path[1:] if path.startswith("/") else path
    if name in SIGNALING_PATHS:
        return SignalingRoute(params)
    if name == STREAM_PATH or name.startswith(STREAM_PATH + "/"):
        return StreamRoute(name[len(STREAM_PATH) :], params)
    return YjsRoute(validate_room_name(name, max_room_length), params)


def validate_room_name(name: str, max_length: int = 256) -> RoomName:
    """Accept 1..max_length visible ASCII characters (what Yjs clients put in a URL path)."""
    if not name or len(name) > max_length:
        raise InvalidPayload(f"room name must have 1 to {max_length} characters")
    if not all("!" <= ch <= "~" for ch in name):
        raise InvalidPayload("room name has control, space or non-ASCII characters")
    return RoomName(name)


def room_for_topic(topic: str, max_room_length: int = 256) -> RoomName | None:
    """The y-websocket room that a y-webrtc signaling topic names, or None if there is none.

    In Edrys-Lite the topic, the Yjs document name and the y-websocket room are one name
    (protocols.md §5.1). A topic has no room when the Yjs door could never reach it by that
    exact name: an invalid room name, a signaling or stream path, or a name with a query.
    """
    try:
        route = route_request("/" + topic, max_room_length=max_room_length)
    except InvalidPayload:
        return None
    if not isinstance(route, YjsRoute) or route.room != topic:
        return None
    return route.room


def parse_query(query: str) -> dict[str, str]:
    """Parse a query string (first value wins), bounded in the number of fields."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        raise InvalidPayload("too many query parameters") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


__all__ = [
    "RoomName",
    "Route",
    "SignalingRoute",
    "StreamRoute",
    "YjsRoute",
    "parse_query",
    "room_for_topic",
    "route_request",
    "validate_room_name",
]
