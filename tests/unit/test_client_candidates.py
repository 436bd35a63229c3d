"""Parsing browsers' trickled ICE candidates for aiortc (protocols.md §4.7 step 6)."""

from __future__ import annotations

import pytest

from edrys_relay.client.webrtc_links import parse_candidate

CHROME = (
    "candidate:842163049 1 udp 1677729535 10.233.0.1 52049 typ host generation 0 "
    "ufrag Ab12 network-id 1 network-cost 50"
)


def test_chrome_host_candidate() -> None:
    candidate = parse_candidate({"candidate": CHROME, "sdpMid": "0", "sdpMLineIndex": 0})
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.type, candidate.protocol) == (
        "10.233.0.1",
        52049,
        "host",
        "udp",
    )
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)


@pytest.mark.parametrize(
    "value",
    [None, "text", {"candidate": ""}, {"candidate": None}, {"sdpMid": "0"}],
)
def test_end_of_candidates_and_junk_give_none(value: object) -> None:
    assert parse_candidate(value) is None


@pytest.mark.parametrize("text", ["candidate:1 1 udp", "candidate:x y z w v u typ host", "1"])
def test_unparsable_candidate_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_candidate({"candidate": text})
