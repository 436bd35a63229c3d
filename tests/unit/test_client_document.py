"""SharedDocument and the client's Awareness: sans-I/O, no network."""

from __future__ import annotations

import json

import pycrdt
import pytest

from edrys_relay.client import Awareness, SharedDocument
from edrys_relay.client import document as document_module
from edrys_relay.protocol.awareness import (
    AwarenessEntry,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage
from edrys_relay.protocol.yjs import (
    EMPTY_UPDATE,
    decode_message,
    encode_awareness,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from edrys_relay.protocol.yupdate import diff_update, merge_updates
from tests.server.ydata import text_updates


def test_answer_to_step1_is_a_diff_of_the_merged_original_updates() -> None:
    shared = SharedDocument()
    updates = text_updates("ab", "cd")
    for update in updates:
        assert shared.handle(encode_sync_update(update), 0.0).relay == encode_sync_update(update)
    merged = merge_updates(updates)
    outcome = shared.handle(encode_sync_step1(b"\x00"), 0.0)
    # built by the byte-faithful codec from the bytes received, never by pycrdt (§2.9)
    assert outcome.replies == [encode_sync_step2(diff_update(merged, b"\x00"))]
    assert outcome.relay is None and not outcome.synced
    assert shared.log == [merged]  # serving compacted the log
    # a peer that holds the first update gets only the rest
    peer = pycrdt.Doc()
    peer.apply_update(updates[0])
    (reply,) = shared.answer_step1(bytes(peer.get_state()))
    assert reply == encode_sync_step2(diff_update(merged, bytes(peer.get_state())))
    peer.apply_update(decode_message(reply).update)  # type: ignore[union-attr]
    assert str(peer.get("t", type=pycrdt.Text)) == "abcd"


def test_raw_log_is_served_when_the_codec_refuses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(updates: list[bytes]) -> bytes:
        raise MalformedMessage("refused")

    monkeypatch.setattr(document_module, "merge_updates", refuse)
    shared = SharedDocument()
    updates = text_updates("ab", "cd")
    for update in updates:
        shared.handle(encode_sync_update(update), 0.0)
    assert shared.answer_step1(b"\x00") == [encode_sync_update(u) for u in updates] + [
        encode_sync_step2(EMPTY_UPDATE)
    ]


def test_malformed_state_vector_raises() -> None:
    shared = SharedDocument()
    shared.doc.get("m", type=pycrdt.Map)["k"] = 1
    with pytest.raises(MalformedMessage):
        shared.answer_step1(b"\x05")


def test_duplicates_are_neither_logged_nor_relayed() -> None:
    shared = SharedDocument()
    (update,) = text_updates("x")
    shared.handle(encode_sync_update(update), 0.0)
    assert shared.handle(encode_sync_update(update), 0.0).relay is None
    assert shared.log == [update]


def test_pending_update_is_kept_and_relayed() -> None:
    first, second = text_updates("a", "b")
    shared = SharedDocument()
    # ``second`` depends on ``first``: Yrs holds it pending, it changes nothing visible yet
    assert shared.handle(encode_sync_update(second), 0.0).relay is not None
    assert shared.handle(encode_sync_step2(first), 0.0).synced
    assert str(shared.doc.get("t", type=pycrdt.Text)) == "ab"
    assert shared.log == [second, first]


def test_local_transactions_are_logged_and_announced() -> None:
    shared = SharedDocument()
    sent: list[bytes] = []
    shared.add_local_listener(sent.append)
    shared.doc.get("m", type=pycrdt.Map)["k"] = "v"
    assert len(shared.log) == 1
    assert sent == [encode_sync_update(shared.log[0])]
    # remote updates do not reach the listener
    shared.handle(encode_sync_update(text_updates("x")[0]), 0.0)
    assert len(sent) == 1


def test_rejected_update_raises() -> None:
    with pytest.raises((InvalidPayload, MalformedMessage)):
        SharedDocument().handle(encode_sync_update(b"\x05\xff\xff"), 0.0)


def test_unknown_message_type_is_reported() -> None:
    assert SharedDocument().handle(b"\x2a\x02{}", 0.0).unknown == 42


def test_query_awareness_answers_with_all_states() -> None:
    shared = SharedDocument()
    shared.awareness.set_local_state({"me": 1}, 0.0)
    (reply,) = shared.handle(encode_query_awareness(), 0.0).replies
    entries = decode_awareness_update(reply[2:])
    assert [(e.client_id, json.loads(e.state)) for e in entries] == [
        (shared.awareness.client_id, {"me": 1})
    ]


def _update(client_id: int, clock: int, state: object) -> bytes:
    return encode_awareness_update([AwarenessEntry(client_id, clock, json.dumps(state))])


def test_awareness_change_is_relayed_once_and_reported() -> None:
    shared = SharedDocument()
    changes = []
    shared.awareness.add_listener(changes.append)
    message = encode_awareness(_update(7, 1, {"name": "x"}))
    assert shared.handle(message, 0.0).relay == message
    assert shared.handle(message, 0.0).relay is None  # same clock: not new, not relayed again
    assert shared.awareness.peers() == {7: {"name": "x"}}
    assert [c.added for c in changes] == [[7]]


def test_awareness_heals_a_removal_of_our_own_state() -> None:
    awareness = Awareness(5)
    awareness.set_local_state({"a": 1}, 0.0)
    changed, heal = awareness.apply(_update(5, 1, None), 0.0)
    assert not changed
    assert heal is not None
    (entry,) = decode_awareness_update(heal)
    assert (entry.client_id, entry.clock, json.loads(entry.state)) == (5, 2, {"a": 1})


def test_awareness_renewal_expiry_and_forgetting() -> None:
    awareness = Awareness(5)
    awareness.set_local_state({"a": 1}, 0.0)
    awareness.apply(_update(9, 3, {"b": 2}), 0.0)
    assert awareness.tick(10.0, renew_seconds=15.0, timeout=30.0) is None
    renewal = awareness.tick(15.0, renew_seconds=15.0, timeout=30.0)
    assert renewal is not None and decode_awareness_update(renewal)[0].clock == 2
    awareness.tick(31.0, renew_seconds=15.0, timeout=30.0)
    assert awareness.peers() == {}
    # after a lost link, a peer re-sending its old clock is accepted again
    awareness.apply(_update(9, 4, {"b": 2}), 40.0)
    awareness.forget_peers()
    awareness.apply(_update(9, 4, {"b": 2}), 41.0)
    assert awareness.peers() == {9: {"b": 2}}
    # a new link gets our state with a fresh clock
    (own, peer) = decode_awareness_update(awareness.renew(42.0))
    assert (own.client_id, own.clock, peer.client_id) == (5, 4, 9)  # 1 + renewals at 15, 31


def test_prefilled_doc_is_served() -> None:
    doc: pycrdt.Doc = pycrdt.Doc()
    doc.get("t", type=pycrdt.Text).insert(0, "before")
    shared = SharedDocument(doc)
    peer = pycrdt.Doc()
    (reply,) = shared.answer_step1(b"\x00")
    peer.apply_update(decode_message(reply).update)  # type: ignore[union-attr]
    assert str(peer.get("t", type=pycrdt.Text)) == "before"
    assert SharedDocument().log == []
