"""Door selection by path (protocols.md §2.1, §6.3-1) and room-name validation (B12)."""

import pytest

from edrys_relay.protocol.errors import InvalidPayload
from edrys_relay.protocol.routing import (
    SignalingRoute,
    StreamRoute,
    YjsRoute,
    room_for_topic,
    route_request,
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
        ("a b", None),
        ("x" * 257, None),
    ],
)
def test_room_for_topic(topic: str, room: str | None) -> None:
    assert room_for_topic(topic) == room
