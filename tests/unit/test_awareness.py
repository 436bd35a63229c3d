"""Awareness wire format (protocols.md §1) and y-protocols clock rules (§2.4)."""

import pytest

from edrys_relay.protocol.awareness import (
    AwarenessEntry,
    AwarenessStates,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage, MessageTooBig

EXAMPLE = bytes.fromhex("01d20901137b2275736572223a7b226964223a2278227d7d")


def test_example_from_protocols_md() -> None:
    entry = AwarenessEntry(1234, 1, '{"user":{"id":"x"}}')
    assert encode_awareness_update([entry]) == EXAMPLE
    assert decode_awareness_update(EXAMPLE) == [entry]


def test_state_text_is_kept_verbatim() -> None:
    text = '{"z":1,  "a":{"y":2,"b":3}}'
    update = encode_awareness_update([AwarenessEntry(7, 3, text)])
    assert decode_awareness_update(update)[0].state == text


def test_null_spellings_are_removals() -> None:
    update = encode_awareness_update([AwarenessEntry(7, 3, " null ")])
    assert decode_awareness_update(update)[0].is_removal


@pytest.mark.parametrize("state", ["{", "nope", "[" * 100_000])
def test_invalid_json_state_is_rejected(state: str) -> None:
    with pytest.raises(InvalidPayload):
        decode_awareness_update(encode_awareness_update([AwarenessEntry(1, 1, state)]))


def test_limits() -> None:
    many = encode_awareness_update([AwarenessEntry(i, 1, "{}") for i in range(10)])
    with pytest.raises(MessageTooBig):
        decode_awareness_update(many, max_entries=9)
    big = encode_awareness_update([AwarenessEntry(1, 1, '"' + "x" * 100 + '"')])
    with pytest.raises(MessageTooBig):
        decode_awareness_update(big, max_state_bytes=50)


@pytest.mark.parametrize("hex_bytes", ["", "01", "01d209", "01d20901", "01d2090105"])
def test_truncated_updates(hex_bytes: str) -> None:
    with pytest.raises(MalformedMessage):
        decode_awareness_update(bytes.fromhex(hex_bytes))


def test_clock_rules() -> None:
    states = AwarenessStates()
    change = states.apply([AwarenessEntry(1, 1, '{"a":1}')], now=0)
    assert change.added == [1]
    # same clock, non-null: stale, ignored
    assert not states.apply([AwarenessEntry(1, 1, '{"a":2}')], now=1)
    # higher clock: accepted as update; same state with higher clock is a renewal, also accepted
    assert states.apply([AwarenessEntry(1, 2, '{"a":2}')], now=2).updated == [1]
    assert states.apply([AwarenessEntry(1, 3, '{"a":2}')], now=3).updated == [1]
    # lower clock: ignored
    assert not states.apply([AwarenessEntry(1, 2, '{"a":9}')], now=4)
    # same clock + null while held: removal
    change = states.apply([AwarenessEntry(1, 3, "null")], now=5)
    assert change.removed == [1]
    assert states.get(1) is None
    # a second identical removal changes nothing
    assert not states.apply([AwarenessEntry(1, 3, "null")], now=6)


def test_remove_keeps_clock_and_sends_null() -> None:
    states = AwarenessStates()
    states.apply([AwarenessEntry(5, 9, "{}")], now=0)
    assert states.remove({5, 6}) == [AwarenessEntry(5, 9, "null")]
    assert len(states) == 0


def test_expiry() -> None:
    states = AwarenessStates()
    states.apply([AwarenessEntry(1, 1, "{}"), AwarenessEntry(2, 1, "{}")], now=0)
    states.apply([AwarenessEntry(2, 2, "{}")], now=20)
    assert states.expire(now=30, timeout=30) == [AwarenessEntry(1, 1, "null")]
    assert states.client_ids() == [2]
    # client 2 expires in turn; client 1's clock is forgotten after twice the timeout
    assert states.expire(now=61, timeout=30) == [AwarenessEntry(2, 2, "null")]
    assert states.apply([AwarenessEntry(1, 1, "{}")], now=61).added == [1]
