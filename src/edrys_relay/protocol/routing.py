"""Which door an upgrade request knocks on, decided from its request target alone.

protocols.md §2.1 and §7.1: ``/`` and ``/signaling`` are y-webrtc signaling; exactly ``/stream``,
``/stream/...`` or ``/stream?...`` is the stream relay (not every ``/stream*`` prefix, the Node
server's pitfall §6.3-1); every other path names a y-websocket room. Like both Node servers we
do not percent-decode the room name, so Edrys' un-encoded room ids map to the same documents.
Room names are keys, never file names; they are still validated to keep logs and storage sane.

A path may start with a token prefix, ``/t/<token>[,<token>...]``, for clients that can only be
given a server URL (stock Edrys-Lite): ``wss://host/t/<token>`` becomes
``wss://host/t/<token>/<room>?userid=...`` in y-websocket and stays verbatim in y-webrtc. The
prefix is cut off before the door is chosen, so the rest routes as above (protocols.md §7.2);
room names therefore never start with ``t/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType
from urllib.parse import parse_qsl, urlsplit

from edrys_relay.protocol.errors import InvalidPayload

RoomName = NewType("RoomName", str)

SIGNALING_PATHS = frozenset({"", "signaling"})
STREAM_PATH = "stream"
TOKEN_PREFIX = "/t/"
"""A path starting with this carries room tokens in its next segment."""
MAX_QUERY_FIELDS = 32


@dataclass(frozen=True, slots=True)
class YjsRoute:
    room: RoomName
    params: dict[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignalingRoute:
    params: dict[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamRoute:
    subpath: str
    params: dict[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()


Route = YjsRoute | SignalingRoute | StreamRoute


def route_request(target: str, *, max_room_length: int = 256) -> Route:
    """Map a request target (path plus optional query) to a door.

    Raises:
        InvalidPayload: an unusable room name (too long, control or non-ASCII characters,
            or starting with the token prefix ``t/``).
    """
    path, _, query = target.partition("?")
    params = parse_query(query)
    tokens, path = split_token_prefix(path)
    name = path[1:] if path.startswith("/") else path
    if name in SIGNALING_PATHS:
        return SignalingRoute(params, tokens)
    if name == STREAM_PATH or name.startswith(STREAM_PATH + "/"):
        return StreamRoute(name[len(STREAM_PATH) :], params, tokens)
    return YjsRoute(validate_room_name(name, max_room_length), params, tokens)


def split_token_prefix(path: str) -> tuple[tuple[str, ...], str]:
    """Split ``/t/<tokens>[/<rest>]`` into the tokens and ``/<rest>``; other paths unchanged.

    The tokens are the comma-separated, non-empty items of the segment after ``/t/``; minted
    tokens use only ``A-Z a-z 0-9 . _ -``, so they need no escaping in a path.
    """
    if not path.startswith(TOKEN_PREFIX):
        return (), path
    segment, _, rest = path[len(TOKEN_PREFIX) :].partition("/")
    return tuple(t for t in segment.split(",") if t), "/" + rest


def token_url(server_url: str, token: str) -> str:
    """``server_url`` with the token prefix: the URL to give a client that takes only a URL.

    ``http(s)`` becomes ``ws(s)``; trailing slashes go, as y-websocket strips them anyway.

    Raises:
        ValueError: not a ws, wss, http or https URL with a host, or one with a query, a
            fragment or already a token prefix.
    """
    parts = urlsplit(server_url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{server_url!r} is not a ws://, wss://, http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{server_url!r} has a query or fragment; give the server URL only")
    path = parts.path.rstrip("/")
    if f"{path}/".startswith(TOKEN_PREFIX):
        raise ValueError(f"{server_url!r} already carries a token prefix")
    return f"{scheme}://{parts.netloc}{path}{TOKEN_PREFIX}{token}"


def validate_room_name(name: str, max_length: int = 256) -> RoomName:
    """Accept 1..max_length visible ASCII characters (what Yjs clients put in a URL path).

    A name starting with ``t/`` is refused: its path would read as a token prefix.
    """
    if not name or len(name) > max_length:
        raise InvalidPayload(f"room name must have 1 to {max_length} characters")
    if not all("!" <= ch <= "~" for ch in name):
        raise InvalidPayload("room name has control, space or non-ASCII characters")
    if name.startswith(TOKEN_PREFIX[1:]):
        raise InvalidPayload("room name starts with t/, the token prefix")
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
    "TOKEN_PREFIX",
    "RoomName",
    "Route",
    "SignalingRoute",
    "StreamRoute",
    "YjsRoute",
    "parse_query",
    "room_for_topic",
    "route_request",
    "split_token_prefix",
    "token_url",
    "validate_room_name",
]
