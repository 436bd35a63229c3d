"""Room tokens (docs/threats.md A1, A2): format, signature, lifetime, rotation, malformed input."""

from __future__ import annotations

import base64
import contextlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edrys_relay.security.tokens import (
    CLOCK_SKEW_SECONDS,
    MAX_TOKEN_LENGTH,
    Claims,
    Role,
    TokenError,
    TokenSigner,
    key_id,
)

SECRET = "s3cret-for-tests-0123456789"
OLD = "old-secret-for-tests-9876543210"
NOW = 1_800_000_000


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner((SECRET,))


def test_round_trip(signer: TokenSigner) -> None:
    token = signer.mint("room-1", Role.READ, now=NOW, ttl_seconds=7200)
    assert signer.verify(token, now=NOW + 10) == Claims("room-1", Role.READ, NOW, NOW + 7200)


def test_token_fits_a_subprotocol_and_a_query_value(signer: TokenSigner) -> None:
    token = signer.mint("a room/with?odd&chars", Role.WRITE, now=NOW, ttl_seconds=60)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)
    assert SECRET not in token


def test_expiry_is_exclusive_and_nbf_has_a_skew(signer: TokenSigner) -> None:
    token = signer.mint("r", Role.WRITE, now=NOW, ttl_seconds=60)
    signer.verify(token, now=NOW + 59.9)
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, now=NOW + 60)
    signer.verify(token, now=NOW - CLOCK_SKEW_SECONDS)
    with pytest.raises(TokenError, match="not yet valid"):
        signer.verify(token, now=NOW - CLOCK_SKEW_SECONDS - 1)


def _swap_claims(token: str, **changes: object) -> str:
    version, kid, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join((version, kid, forged, mac))


@pytest.mark.parametrize(
    "changes", [{"room": "other"}, {"role": "write"}, {"exp": NOW + 10**9}], ids=str
)
def test_tampered_claims_are_refused(signer: TokenSigner, changes: dict[str, object]) -> None:
    token = signer.mint("room", Role.READ, now=NOW, ttl_seconds=60)
    with pytest.raises(TokenError, match="bad signature"):
        signer.verify(_swap_claims(token, **changes), now=NOW)


def test_other_secret_and_flipped_mac_are_refused(signer: TokenSigner) -> None:
    other = TokenSigner(("another-secret-0123456789",))
    with pytest.raises(TokenError, match="unknown key"):
        signer.verify(other.mint("r", Role.WRITE, now=NOW, ttl_seconds=60), now=NOW)
    token = signer.mint("r", Role.WRITE, now=NOW, ttl_seconds=60)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        signer.verify(flipped, now=NOW)


def test_rotation_accepts_the_old_key_only_while_listed() -> None:
    old_token = TokenSigner((OLD,)).mint("r", Role.WRITE, now=NOW, ttl_seconds=60)
    rotating = TokenSigner((SECRET, OLD))
    assert rotating.verify(old_token, now=NOW).room == "r"
    assert rotating.mint("r", Role.WRITE, now=NOW, ttl_seconds=60).split(".")[1] == key_id(SECRET)
    with pytest.raises(TokenError, match="unknown key"):
        TokenSigner((SECRET,)).verify(old_token, now=NOW)


def test_short_secrets_and_bad_lifetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(("short",))
    with pytest.raises(ValueError):
        TokenSigner(())
    with pytest.raises(ValueError):
        TokenSigner((SECRET,)).mint("r", Role.WRITE, now=NOW, ttl_seconds=0)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v2.a.b.c", "v1.x.y", "v1.a.b.c.d", "v1.%s.!!.@@", "v1.%s.é.x", "x" * 5000],
)
def test_malformed_tokens_raise_token_error(signer: TokenSigner, token: str) -> None:
    with pytest.raises(TokenError):
        signer.verify(token.replace("%s", key_id(SECRET)), now=NOW)


def test_signed_but_malformed_claims_are_refused(signer: TokenSigner) -> None:
    for claims in (b"[]", b'{"room":1,"role":"write","nbf":0,"exp":9}', b"not json"):
        payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        kid = key_id(SECRET)
        mac = signer._mac(kid, f"v1.{kid}.{payload}")
        token = f"v1.{kid}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        with pytest.raises(TokenError, match="malformed claims"):
            signer.verify(token, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=MAX_TOKEN_LENGTH + 10))
def test_fuzzed_tokens_only_raise_token_error(token: str) -> None:
    with contextlib.suppress(TokenError):
        TokenSigner((SECRET,)).verify(token, now=NOW)


def test_mac_is_compared_in_constant_time(
    signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/threats.md A2 / V20: the MAC is checked with hmac.compare_digest, before any parsing."""
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = signer.mint("r", Role.WRITE, now=NOW, ttl_seconds=60)
    signer.verify(token, now=NOW)
    with pytest.raises(TokenError):
        signer.verify(_swap_claims(token, room="x"), now=NOW)
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)
