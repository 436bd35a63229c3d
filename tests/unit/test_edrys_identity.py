"""Edrys' data-channel identity messages 43/44 and the challenge signature (protocols.md §5.4)."""

from __future__ import annotations

import base64

import pytest

from edrys_relay.protocol.edrys_identity import (
    Identity,
    challenge_text,
    decode_handshake,
    decode_user_id,
    verify_challenge,
)
from edrys_relay.protocol.errors import MalformedMessage

NOW = 1_764_115_200_123  # ms
ROOM = "AbCdEfGhIjKlMnOp"


def test_challenge_text() -> None:
    assert challenge_text(ROOM, NOW) == b"AbCdEfGhIjKlMnOp:58803840"
    assert challenge_text(ROOM, NOW, 1) == b"AbCdEfGhIjKlMnOp:58803839"


def test_identity_format() -> None:
    identity = Identity.generate()
    assert len(identity.public_key) == 88 and identity.public_key.endswith("=")
    assert base64.b64decode(identity.public_key)[0] == 4  # uncompressed point
    pub, _, session = identity.user_id.rpartition("_")
    assert pub == identity.public_key and len(session) == 6 and session.isalnum()


def test_messages_round_trip_and_verify() -> None:
    identity = Identity.generate()
    user, handshake = identity.messages(ROOM, NOW)
    assert decode_user_id(user) == identity.user_id
    public_key, signature = decode_handshake(handshake)
    assert public_key == identity.public_key
    assert len(base64.b64decode(signature)) == 64  # r‖s, not DER
    assert verify_challenge(public_key, signature, ROOM, NOW)
    assert verify_challenge(public_key, signature, ROOM, NOW + 30_000)  # previous window
    assert not verify_challenge(public_key, signature, ROOM, NOW + 60_000)
    assert not verify_challenge(public_key, signature, ROOM, NOW - 30_000)  # from the future
    assert not verify_challenge(public_key, signature, "OtherRoom", NOW)
    other = Identity.generate()
    assert not verify_challenge(other.public_key, signature, ROOM, NOW)


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [("not base64!", "AA=="), ("AAAA", "AA=="), (None, base64.b64encode(b"x" * 63).decode())],
)
def test_malformed_keys_and_signatures_fail(public_key: str | None, signature: str) -> None:
    key = public_key if public_key is not None else Identity.generate().public_key
    assert not verify_challenge(key, signature, ROOM, NOW)


@pytest.mark.parametrize("message", [b"", b"\x2b", b"\x2b\x05ab", b"\x2a\x00"])
def test_malformed_user_id_messages(message: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_user_id(message)


@pytest.mark.parametrize("message", [b"", b"\x2c\x01a", b"\x2b\x00\x00"])
def test_malformed_handshake_messages(message: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_handshake(message)
