"""The y-webrtc peer protocol state machine (protocols.md §4.4)."""

from __future__ import annotations

import pytest

from edrys_relay.protocol.errors import InvalidPayload
from edrys_relay.protocol.webrtc_peers import Connect, Deliver, PeerTable

OFFER = {"type": "offer", "sdp": "v=0"}
ANSWER = {"type": "answer", "sdp": "v=0"}


def signal(sender: str, signal: dict[str, object], token: float = 5.0, to: str = "me") -> dict:
    return {"to": to, "from": sender, "type": "signal", "token": token, "signal": signal}


def test_announce_makes_us_the_initiator_once() -> None:
    table = PeerTable("me")
    assert table.receive({"type": "announce", "from": "x"}) == Connect("x")
    assert table.receive({"type": "announce", "from": "x"}) is None
    assert "x" in table and len(table) == 1


@pytest.mark.parametrize(
    "message",
    [
        {"type": "announce", "from": "me"},
        signal("x", OFFER, to="someone-else"),
        {"type": "announce"},
        {"type": "unknown", "from": "x"},
        "not an object",
        None,
    ],
)
def test_ignored(message: object) -> None:
    assert PeerTable("me").receive(message) is None


def test_max_conns_limits_announces_but_not_offers() -> None:
    table = PeerTable("me", max_conns=1)
    assert table.receive({"type": "announce", "from": "a"}) == Connect("a")
    assert table.receive({"type": "announce", "from": "b"}) is None
    assert table.receive(signal("b", OFFER)) == Deliver("b", OFFER, create=True, replace=False)


def test_signal_tokens_are_set_once_and_cleared_by_an_answer() -> None:
    table = PeerTable("me")
    table.receive({"type": "announce", "from": "x"})
    first = table.signal("x", OFFER, now_token=10.5)
    assert first == {"to": "x", "from": "me", "type": "signal", "token": 10.5, "signal": OFFER}
    assert table.signal("x", {"type": "candidate"}, now_token=99.0)["token"] == 10.5
    assert table.receive(signal("x", ANSWER)) == Deliver("x", ANSWER, create=False, replace=False)
    assert table.signal("x", {"type": "candidate"}, now_token=20.0)["token"] == 20.0


def test_glare_our_higher_token_drops_their_offer() -> None:
    table = PeerTable("me")
    table.receive({"type": "announce", "from": "x"})
    table.signal("x", OFFER, now_token=100.0)
    assert table.receive(signal("x", OFFER, token=50.0)) is None


def test_glare_their_higher_token_wins_and_replaces_our_connection() -> None:
    table = PeerTable("me")
    table.receive({"type": "announce", "from": "x"})
    table.signal("x", OFFER, now_token=100.0)
    action = table.receive(signal("x", OFFER, token=200.0))
    assert action == Deliver("x", OFFER, create=True, replace=True)
    # the replacement is a non-initiator that has answered: our next token is fresh
    assert table.signal("x", ANSWER, now_token=300.0)["token"] == 300.0


def test_offer_on_an_existing_connection_without_token_is_accepted() -> None:
    table = PeerTable("me")
    assert table.receive(signal("x", OFFER)) == Deliver("x", OFFER, create=True, replace=False)
    candidate = {"type": "candidate", "candidate": {"candidate": "a"}}
    assert table.receive(signal("x", candidate)) == Deliver("x", candidate, False, False)


def test_closed_forgets_the_peer() -> None:
    table = PeerTable("me")
    table.receive({"type": "announce", "from": "x"})
    table.closed("x")
    assert "x" not in table
    assert table.receive({"type": "announce", "from": "x"}) == Connect("x")


@pytest.mark.parametrize(
    "message",
    [
        {"to": "me", "from": "x", "type": "signal", "signal": "offer"},
        {"to": "me", "from": "x", "type": "signal"},
    ],
)
def test_malformed_signals_raise(message: dict[str, object]) -> None:
    with pytest.raises(InvalidPayload):
        PeerTable("me").receive(message)


def test_offer_without_numeric_token_on_existing_connection_raises() -> None:
    table = PeerTable("me")
    table.receive({"type": "announce", "from": "x"})
    with pytest.raises(InvalidPayload):
        table.receive({"to": "me", "from": "x", "type": "signal", "token": "t", "signal": OFFER})
