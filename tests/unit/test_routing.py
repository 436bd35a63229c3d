"""Doors by path (protocols.md §2.1, §6.3-1), the token prefix, room names (docs/threats.md B12)."""

from urllib.parse import urlsplit

import pytest

from edrys_relay.protocol.errors import InvalidPayload
from edrys_relay.protocol.routing import (
    SignalingRoute,
    StreamRoute,
    YjsRoute,
    room_for_topic,
    route_request,
    token_url,
)


@pytest.mark.parametrize("target", ["/", "/signaling", "/?x=1", "/signaling?token=a"])
def test_signaling_paths(target: str) -> None:
    assert isinstance(route_request(target), SignalingRoute)


@pytest.mark.parametrize("target", ["/stream", "/stream/abc", "/stream?room=x", "/stream/"])
def test_stream_paths(target: str) -> None:
    assert isinstance(route_request(target), StreamRoute)


@pytest.mark.parametrize(
    ("target", "room"),
    [
        ("/streaming", "streaming"),
        ("/stream-lab", "stream-lab"),
        ("/AbCdEfGhIjKlMnOp?userid=BB7w%2B_x1", "AbCdEfGhIjKlMnOp"),
        ("/yjs/room", "yjs/room"),
        ("/a%20b", "a%20b"),  # not percent-decoded, like both Node servers
        ("/signalingroom", "signalingroom"),
    ],
)
def test_yjs_rooms(target: str, room: str) -> None:
    route = route_request(target)
    assert isinstance(route, YjsRoute)
    assert route.room == room


def test_query_parameters_are_kept() -> None:
    route = route_request("/room?userid=Station%20ab12cd&userid=second&x")
    assert isinstance(route, YjsRoute)
    assert route.params == {"userid": "Station ab12cd", "x": ""}


@pytest.mark.parametrize("target", ["/" + "x" * 257, "/a\x00b", "/a\tb", "/caf\u00e9"])
def test_bad_room_names(target: str) -> None:
    with pytest.raises(InvalidPayload):
        route_request(target)


def test_too_many_query_fields() -> None:
    with pytest.raises(InvalidPayload):
        route_request("/room?" + "&".join(f"k{i}=v" for i in range(100)))


TOKEN = "v1.1bd8fd47.eyJleHAiOjF9.4zTk_nPAh8O-k8"


@pytest.mark.parametrize(
    ("target", "door", "tokens", "rest"),
    [
        # y-websocket appends "/<room>?<params>" to a server URL ending in /t/<token>
        (f"/t/{TOKEN}/AbCdEfGhIjKlMnOp?userid=BB7w%2B_x1", YjsRoute, (TOKEN,), "AbCdEfGhIjKlMnOp"),
        (f"/t/{TOKEN}/yjs/room", YjsRoute, (TOKEN,), "yjs/room"),
        (f"/t/{TOKEN}/Lab:1$x", YjsRoute, (TOKEN,), "Lab:1$x"),  # not decoded, not encoded
        (f"/t/{TOKEN},{TOKEN}x/r", YjsRoute, (TOKEN, TOKEN + "x"), "r"),
        ("/t//r", YjsRoute, (), "r"),
        # y-webrtc uses the signaling URL verbatim, with or without a trailing slash
        (f"/t/{TOKEN}", SignalingRoute, (TOKEN,), None),
        (f"/t/{TOKEN}/", SignalingRoute, (TOKEN,), None),
        (f"/t/{TOKEN}/signaling?x=1", SignalingRoute, (TOKEN,), None),
        ("/t/", SignalingRoute, (), None),
        (f"/t/{TOKEN}/stream", StreamRoute, (TOKEN,), ""),
        (f"/t/{TOKEN}/stream/cam?binary=1", StreamRoute, (TOKEN,), "/cam"),
        # a room literally named "t" is a room; only "t/" starts a prefix
        ("/t", YjsRoute, (), "t"),
        ("/t?userid=u", YjsRoute, (), "t"),
        ("/tt/x", YjsRoute, (), "tt/x"),
        ("/room/t/x", YjsRoute, (), "room/t/x"),
    ],
)
def test_token_prefix(target: str, door: type, tokens: tuple[str, ...], rest: str | None) -> None:
    route = route_request(target)
    assert type(route) is door
    assert route.tokens == tokens
    if isinstance(route, YjsRoute):
        assert route.room == rest
    if isinstance(route, StreamRoute):
        assert route.subpath == rest


def test_token_prefix_keeps_the_query() -> None:
    route = route_request(f"/t/{TOKEN}/room?userid=Station%20ab12cd&token=q")
    assert isinstance(route, YjsRoute)
    assert route.params == {"userid": "Station ab12cd", "token": "q"}


@pytest.mark.parametrize("target", [f"/t/{TOKEN}/t/x", f"/t/{TOKEN}/t/{TOKEN}/room"])
def test_room_names_never_start_with_the_prefix(target: str) -> None:
    with pytest.raises(InvalidPayload, match="token prefix"):
        route_request(target)


def test_room_length_limit_excludes_the_prefix() -> None:
    route = route_request(f"/t/{TOKEN}/" + "r" * 20, max_room_length=20)
    assert isinstance(route, YjsRoute)
    with pytest.raises(InvalidPayload):
        route_request(f"/t/{TOKEN}/" + "r" * 21, max_room_length=20)


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("wss://relay.example", f"wss://relay.example/t/{TOKEN}"),
        ("wss://relay.example//", f"wss://relay.example/t/{TOKEN}"),
        ("https://relay.example:8443/edrys/", f"wss://relay.example:8443/edrys/t/{TOKEN}"),
        ("http://127.0.0.1:1234", f"ws://127.0.0.1:1234/t/{TOKEN}"),
    ],
)
def test_token_url(server: str, url: str) -> None:
    assert token_url(server, TOKEN) == url
    # what y-websocket then asks for routes back to the token and the room (a proxy serving
    # the relay below /edrys/ strips that part first)
    path = urlsplit(url + "/room").path.removeprefix("/edrys")
    route = route_request(path)
    assert isinstance(route, YjsRoute) and route.tokens == (TOKEN,) and route.room == "room"


@pytest.mark.parametrize(
    "server", ["ftp://x", "wss://", "wss://h/?a=1", "wss://h/#f", "wss://h/t/old", "relay.example"]
)
def test_token_url_refuses(server: str) -> None:
    with pytest.raises(ValueError):
        token_url(server, TOKEN)


@pytest.mark.parametrize(
    ("topic", "room"),
    [
        ("AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
        ("AbCdEfGhIjKlMnOpHASH1234", "AbCdEfGhIjKlMnOpHASH1234"),
        ("yjs/room", "yjs/room"),
        ("streaming", "streaming"),
        ("", None),  # the signaling door itself
        ("signaling", None),
        ("stream", None),
        ("stream/x", None),
        ("a?b", None),  # the Yjs door would serve room "a"
        ("t/tok/room", None),  # a token prefix: the Yjs door would serve room "room"
        ("a b", None),
        ("x" * 257, None),
    ],
)
def test_room_for_topic(topic: str, room: str | None) -> None:
    assert room_for_topic(topic) == room
