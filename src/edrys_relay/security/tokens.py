"""Room tokens: HMAC-SHA256 over canonical claims, bound to a room, a role and a lifetime.

Format (all characters are RFC 7230 ``tchar``, so a token also fits a WebSocket subprotocol)::

    v1.<kid>.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1.<kid>.<claims>"))>

``kid`` names the secret that signed the token, so a new secret can be introduced while tokens
signed with the previous one stay valid until it is removed (docs/threats.md A2). The MAC is checked
with :func:`hmac.compare_digest` before any claim is parsed, so an unsigned token never reaches
the JSON decoder (docs/threats.md V20). Nothing here logs; tokens and secrets stay out of messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum

from edrys_relay.protocol.errors import PolicyViolation

VERSION = "v1"
MAX_TOKEN_LENGTH = 2048
MIN_SECRET_LENGTH = 16
CLOCK_SKEW_SECONDS = 60
"""Tolerance for a not-yet-valid token (``nbf`` in the future), for servers with drifting clocks."""


class Role(StrEnum):
    """What a token lets its holder do in its room."""

    WRITE = "write"
    """Read and change the document; join signaling topics; watch streams."""
    READ = "read"
    """Receive everything, send awareness; document updates are dropped."""
    SOURCE = "source"
    """Register as the room's video source on the stream door (and watch)."""


class TokenError(PolicyViolation):
    """A token is missing, malformed, badly signed, expired or for another room."""

    close_reason = "not authorized"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    room: str
    role: Role
    not_before: int
    expires: int


def key_id(secret: str) -> str:
    """A short public name for a secret (8 hex digits of its SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


class TokenSigner:
    """Mints tokens with the first secret and verifies tokens signed by any of them."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"a secret must have at least {MIN_SECRET_LENGTH} characters")
        self._keys = {key_id(secret): secret.encode() for secret in secrets}
        self._current = key_id(secrets[0])

    def mint(self, room: str, role: Role, *, now: int, ttl_seconds: int) -> str:
        """Return a token for ``room`` valid from ``now`` for ``ttl_seconds``."""
        if ttl_seconds <= 0:
            raise ValueError("the lifetime must be positive")
        claims = {"exp": now + ttl_seconds, "nbf": now, "role": role.value, "room": room}
        payload = _b64encode(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
        signed = f"{VERSION}.{self._current}.{payload}"
        return f"{signed}.{_b64encode(self._mac(self._current, signed))}"

    def verify(self, token: str, *, now: float) -> Claims:
        """Check signature and lifetime; return the claims.

        Raises:
            TokenError: malformed, unknown key, bad signature, not yet valid or expired.
        """
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise TokenError("token too long or not ASCII")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise TokenError("not a v1 token")
        _, kid, payload, mac = parts
        if kid not in self._keys:
            raise TokenError("unknown key id")
        expected = self._mac(kid, f"{VERSION}.{kid}.{payload}")
        if not hmac.compare_digest(expected, _b64decode(mac)):
            raise TokenError("bad signature")
        claims = _parse_claims(_b64decode(payload))
        if now + CLOCK_SKEW_SECONDS < claims.not_before:
            raise TokenError("token not yet valid")
        if now >= claims.expires:
            raise TokenError("token expired")
        return claims

    def _mac(self, kid: str, signed: str) -> bytes:
        return hmac.new(self._keys[kid], signed.encode("ascii"), hashlib.sha256).digest()


def _parse_claims(raw: bytes) -> Claims:
    try:
        value = json.loads(raw)
        role = Role(value["role"])
        room, nbf, exp = value["room"], value["nbf"], value["exp"]
    except (ValueError, TypeError, KeyError) as exc:
        raise TokenError("malformed claims") from exc
    if not isinstance(room, str) or not all(type(t) is int for t in (nbf, exp)):
        raise TokenError("malformed claims")
    return Claims(room, role, nbf, exp)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenError("malformed token") from exc


__all__ = [
    "CLOCK_SKEW_SECONDS",
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_LENGTH",
    "Claims",
    "Role",
    "TokenError",
    "TokenSigner",
    "key_id",
]
