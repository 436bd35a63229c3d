"""y-websocket envelope: protocols.md §1-2 examples, malformed frames (docs/threats.md B3, B4)."""

import pytest

from edrys_relay.protocol import yjs
from edrys_relay.protocol.errors import MalformedMessage


def test_examples_from_protocols_md() -> None:
    assert yjs.encode_sync_step1(yjs.EMPTY_STATE_VECTOR).hex() == "00000100"
    assert yjs.encode_sync_step2(yjs.EMPTY_UPDATE).hex() == "0001020000"
    assert yjs.decode_message(bytes.fromhex("00000100")) == yjs.SyncStep1(b"\x00")
    assert yjs.decode_message(bytes.fromhex("0001020000")) == yjs.SyncStep2(b"\x00\x00")


@pytest.mark.parametrize(
    ("message", "encode"),
    [
        (yjs.SyncUpdate(b"\x01\x02"), lambda m: yjs.encode_sync_update(m.update)),
        (yjs.SyncStep2(b"\x00\x00"), lambda m: yjs.encode_sync_step2(m.update)),
        (yjs.AwarenessMessage(b"\x00"), lambda m: yjs.encode_awareness(m.update)),
        (yjs.QueryAwareness(), lambda m: yjs.encode_query_awareness()),
        (yjs.AuthMessage(0, "no"), lambda m: yjs.encode_auth_denied(m.reason)),
    ],
)
def test_round_trip(message: yjs.Message, encode) -> None:  # type: ignore[no-untyped-def]
    assert yjs.decode_message(encode(message)) == message


def test_update_layout() -> None:
    assert yjs.encode_sync_update(b"\xaa" * 200).hex() == "0002c801" + "aa" * 200


def test_unknown_message_type_is_reported_not_raised() -> None:
    assert yjs.decode_message(b"\x07") == yjs.UnknownMessage(7)
    assert yjs.decode_message(b"\x2a\x01") == yjs.UnknownMessage(42)


@pytest.mark.parametrize(
    "frame",
    [
        b"",  # empty frame
        b"\x00",  # sync without sync type
        b"\x00\x02",  # update without payload length
        b"\x00\x02\x05\x00",  # payload length beyond the frame
        b"\x00\x09\x00",  # unknown sync type
        b"\x01",  # awareness without payload
        b"\x80",  # truncated message type
        b"\xff" * 9,  # overlong varint
        b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\x0f",  # length 2^53-1
    ],
)
def test_malformed_frames_raise_one_error_type(frame: bytes) -> None:
    with pytest.raises(MalformedMessage):
        yjs.decode_message(frame)
