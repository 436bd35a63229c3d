"""y-webrtc signaling messages (protocols.md §4.2) and bad JSON (docs/threats.md B8/B9)."""

import json

import pytest

from edrys_relay.protocol import signaling
from edrys_relay.protocol.errors import InvalidPayload, MessageTooBig


def test_subscribe_keeps_strings_once_in_order() -> None:
    message = signaling.decode_signaling('{"type":"subscribe","topics":["b","a",3,"b",null]}')
    assert message == signaling.Subscribe(("b", "a"))


def test_unsubscribe_and_ping() -> None:
    assert signaling.decode_signaling('{"type":"unsubscribe","topics":["a"]}') == (
        signaling.Unsubscribe(("a",))
    )
    assert signaling.decode_signaling('{"type":"ping"}') == signaling.Ping()


def test_unknown_type_is_ignored() -> None:
    assert signaling.decode_signaling('{"type":"announce"}') == signaling.Ignored("announce")


def test_publish_is_forwarded_with_data_untouched() -> None:
    text = '{"type":"publish","topic":"room","data":{"z":1,"a":[1.5,"x"]},"extra":true}'
    message = signaling.decode_signaling(text)
    assert isinstance(message, signaling.Publish)
    out = signaling.encode_publish(message.message, 2)
    assert (
        out
        == '{"type":"publish","topic":"room","data":{"z":1,"a":[1.5,"x"]},"extra":true,"clients":2}'
    )
    assert "clients" not in signaling.encode_publish(message.message, None)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1,2]",
        '"string"',
        "{}",
        '{"type":5}',
        '{"type":"subscribe","topics":"a"}',
        '{"type":"publish"}',
        '{"type":"publish","topic":7}',
        "[" * 100_000,
        '{"type":"ping","n":' + "9" * 10_000 + "}",
    ],
)
def test_bad_frames_raise_invalid_payload(text: str) -> None:
    with pytest.raises(InvalidPayload):
        signaling.decode_signaling(text)


def test_long_topic_is_rejected() -> None:
    with pytest.raises(MessageTooBig):
        signaling.decode_signaling(json.dumps({"type": "subscribe", "topics": ["x" * 2000]}))
