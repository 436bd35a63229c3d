"""``/stream`` messages (protocols.md §3) and the binary frame layout (docs/stream.md)."""

from __future__ import annotations

import base64
import json
import math

import pytest

from edrys_relay.protocol import stream
from edrys_relay.protocol.stream import ImageFormat, Rejected

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 40


def decode(value: object) -> stream.StreamMessage:
    return stream.decode_stream_message(json.dumps(value))


# -- client messages ------------------------------------------------------------------------------


@pytest.mark.parametrize("room_id", [None, "", 0, False])
def test_missing_room_id_gets_the_node_error_strings(room_id: object) -> None:
    assert decode({"type": "register-source", "roomId": room_id}) == Rejected(
        "Room ID is required to register as source"
    )
    assert decode({"type": "join-room", "roomId": room_id}) == Rejected(
        "Room ID is required to join a room"
    )
    assert decode({"type": "join-room"}) == Rejected("Room ID is required to join a room")


@pytest.mark.parametrize("room_id", [5, [], {"a": 1}, True])
def test_room_id_must_be_a_string(room_id: object) -> None:
    assert decode({"type": "join-room", "roomId": room_id}) == Rejected("Room ID must be a string")


def test_room_id_limits() -> None:
    long = {"type": "register-source", "roomId": "r" * 300}
    assert decode(long) == Rejected("Room ID is too long")
    assert stream.decode_stream_message(json.dumps(long), max_room_id=300) == (
        stream.RegisterSource("r" * 300)
    )
    surrogate = '{"type":"join-room","roomId":"a\\ud800"}'
    assert stream.decode_stream_message(surrogate) == Rejected("Room ID must be a string")


def test_join_room_binary_choice() -> None:
    assert decode({"type": "join-room", "roomId": "r"}) == stream.JoinRoom("r", None)
    binary = {"type": "join-room", "roomId": "r", "binary": True}
    assert decode(binary) == stream.JoinRoom("r", True)
    assert decode({"type": "join-room", "roomId": "r", "binary": 1}) == stream.JoinRoom("r", None)


def test_frame_keeps_the_original_text_byte_for_byte() -> None:
    text = '{ "data" : "data:image/jpeg;base64,AAAA",  "type":"frame", "z": [1, 2.50], "ü": 1 }'
    message = stream.decode_stream_message(text)
    assert isinstance(message, stream.Frame)
    assert message.frame.as_json() == text.encode()
    assert message.frame.for_viewer(binary=False) == (text.encode(), True)
    # Sent as a binary WebSocket message, the same JSON is forwarded as the same text.
    again = stream.decode_stream_message(text.encode())
    assert isinstance(again, stream.Frame) and again.frame.as_json() == text.encode()


@pytest.mark.parametrize("data", [None, "", 0, False])
def test_frame_without_truthy_data_is_ignored(data: object) -> None:
    assert isinstance(decode({"type": "frame", "data": data}), stream.Ignored)
    assert isinstance(decode({"type": "frame"}), stream.Ignored)


@pytest.mark.parametrize("data", [[], {}, 1, "x"])
def test_frame_data_truthiness_follows_javascript(data: object) -> None:
    assert isinstance(decode({"type": "frame", "data": data}), stream.Frame)


@pytest.mark.parametrize(
    ("timestamp", "echoed"),
    [(123, 123), (1.5, 1.5), ("t-1", "t-1"), (None, None), ("x" * 65, None), ({"a": 1}, None)],
)
def test_ping_echoes_only_small_timestamps(timestamp: object, echoed: object) -> None:
    assert decode({"type": "ping", "timestamp": timestamp}) == stream.Ping(echoed)


def test_pong_response_and_stats_keep_finite_numbers_only() -> None:
    assert decode({"type": "pong-response", "serverTimestamp": 10}) == stream.PongResponse(10.0)
    assert isinstance(decode({"type": "pong-response", "serverTimestamp": "x"}), stream.Ignored)
    stats = decode({"type": "stats", "fps": 14.5, "bufferSize": "big", "dropped": 3, "x": 1})
    assert stats == stream.Stats({"fps": 14.5, "dropped": 3.0})


@pytest.mark.parametrize(
    "message",
    [
        "{nope",
        "[1,2]",
        '"frame"',
        '{"type":"keep-alive"}',
        '{"type":["frame"]}',
        '{"type":"frame","data":NaN}',
        '{"type":"ping","timestamp":Infinity}',
        "[" * 100_000 + "]" * 100_000,
        '{"type":"ping","timestamp":' + "9" * 5000 + "}",
        b"\xff\xfe{not utf-8",
        b"ESF",
    ],
    ids=lambda m: repr(m[:24]),
)
def test_unparsable_and_unknown_messages_are_ignored(message: str | bytes) -> None:
    assert isinstance(stream.decode_stream_message(message), stream.Ignored)


# -- binary frames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "image"),
    [(ImageFormat.JPEG, JPEG), (ImageFormat.WEBP, WEBP), (ImageFormat.PNG, PNG)],
)
def test_binary_frame_round_trip(image_format: ImageFormat, image: bytes) -> None:
    raw = stream.encode_binary_frame(image_format, image, 1764115200123.0)
    assert raw[:4] == b"ESF1" and raw[4] == image_format and raw[16:] == image
    assert len(raw) == stream.HEADER_SIZE + len(image) == 16 + len(image)
    message = stream.decode_stream_message(raw)
    assert isinstance(message, stream.Frame)
    assert message.frame.for_viewer(binary=True) == (raw, False)
    as_json = json.loads(message.frame.as_json())
    mime = stream.MIME_TYPES[image_format]
    assert as_json == {
        "type": "frame",
        "data": f"data:{mime};base64," + base64.b64encode(image).decode(),
        "timestamp": 1764115200123,
    }
    assert message.frame.as_json().endswith(b',"timestamp":1764115200123}')


def test_binary_frame_without_timestamp_has_no_timestamp_field() -> None:
    message = stream.decode_stream_message(stream.encode_binary_frame(ImageFormat.JPEG, JPEG))
    assert isinstance(message, stream.Frame)
    assert "timestamp" not in json.loads(message.frame.as_json())


def _with(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


GOOD = stream.encode_binary_frame(ImageFormat.JPEG, JPEG, 5.0)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (GOOD[:16], "too short"),
        (_with(GOOD, 4, b"\x09"), "unknown image format"),
        (_with(GOOD, 5, b"\x01"), "reserved bytes must be zero"),
        (stream.HEADER.pack(b"ESF1", 1, b"\0\0\0", math.nan) + JPEG, "bad timestamp"),
        (stream.HEADER.pack(b"ESF1", 1, b"\0\0\0", -1.0) + JPEG, "bad timestamp"),
        (stream.HEADER.pack(b"ESF1", 1, b"\0\0\0", math.inf) + JPEG, "bad timestamp"),
        (stream.encode_binary_frame(ImageFormat.JPEG, PNG), "the image is not image/jpeg"),
        (stream.encode_binary_frame(ImageFormat.WEBP, JPEG), "the image is not image/webp"),
        (stream.encode_binary_frame(ImageFormat.PNG, b"<svg/>"), "the image is not image/png"),
    ],
)
def test_bad_binary_frames_are_rejected_with_a_reason(raw: bytes, why: str) -> None:
    assert stream.decode_stream_message(raw) == Rejected(f"Invalid binary frame: {why}", True)


def test_json_frame_is_converted_to_binary_once() -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    message = decode({"type": "frame", "data": url, "timestamp": 42})
    assert isinstance(message, stream.Frame)
    first = message.frame.as_binary()
    assert first == stream.encode_binary_frame(ImageFormat.JPEG, JPEG, 42.0)
    assert message.frame.as_binary() is first
    assert message.frame.for_viewer(binary=True) == (first, False)


@pytest.mark.parametrize(
    "data",
    [
        "data:image/gif;base64,R0lGOD",
        "data:image/jpeg,plain",
        "data:image/jpeg;base64,@@@@",
        "data:image/jpeg;base64,",
        "https://example.org/x.jpg",
        ["not", "a", "string"],
    ],
)
def test_binary_viewers_get_the_json_text_when_data_is_no_image_url(data: object) -> None:
    message = decode({"type": "frame", "data": data})
    assert isinstance(message, stream.Frame)
    assert message.frame.as_binary() is None
    assert message.frame.for_viewer(binary=True) == (message.frame.as_json(), True)


# -- server messages ------------------------------------------------------------------------------


def test_server_messages_match_the_node_relay() -> None:
    assert stream.encode_info(["a", "b"], 2) == (
        '{"type":"info","message":"Connected to WebSocket streaming server",'
        '"sources":["a","b"],"clients":2}'
    )
    assert stream.encode_info(None, 0) == (
        '{"type":"info","message":"Connected to WebSocket streaming server","clients":0}'
    )
    assert stream.encode_error(stream.room_has_source("Raum ü")) == (
        '{"type":"error","message":"Room Raum ü already has an active source"}'
    )
    assert stream.encode_source_registered("r") == '{"type":"source-registered","roomId":"r"}'
    assert stream.encode_source_available("r") == '{"type":"source-available","roomId":"r"}'
    assert stream.encode_source_disconnected("r") == '{"type":"source-disconnected","roomId":"r"}'
    assert stream.encode_pong(1000, 5) == '{"type":"pong","timestamp":1000,"clientTimestamp":5}'
    assert stream.encode_pong(1000, None) == '{"type":"pong","timestamp":1000}'
    assert stream.encode_ping(7, clients=3, fps=15.0, dropped=2) == (
        '{"type":"ping","timestamp":7,"stats":{"clients":3,"fps":15,"dropped":2}}'
    )
    assert '"fps":14.8,' in stream.encode_ping(7, clients=3, fps=14.8, dropped=0)
