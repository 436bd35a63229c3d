"""Edrys-Lite's peer identity on WebRTC data channels (protocols.md §5.4, §5.5).

After a data channel opens, Edrys peers send message 43 (varString user id) and then 44
(varString public key, varString challenge signature). Keys are ECDSA P-256: the public key is
base64 of the 65-byte uncompressed point, a signature base64 of the 64-byte ``r‖s`` (IEEE P1363,
WebCrypto's format). The challenge is the UTF-8 text ``"<room>:<floor(unix_ms / 30000)>"``; a
verifier accepts the current and the previous 30-second window. The signature does not bind the
user id. Callers pass the time in.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import Decoder, encode_var_string

USER_ID = 43
HANDSHAKE = 44
WINDOW_MS = 30_000
_ALNUM = string.ascii_letters + string.digits
_CURVE = ec.SECP256R1()


def challenge_text(room: str, now_ms: int, windows_back: int = 0) -> bytes:
    """The signed challenge for ``room`` at ``now_ms`` (or that many windows earlier)."""
    return f"{room}:{now_ms // WINDOW_MS - windows_back}".encode()


@dataclass(frozen=True, slots=True)
class Identity:
    """An Edrys identity: a P-256 key pair and a session user id ``<public key>_<6 chars>``."""

    private_key: ec.EllipticCurvePrivateKey
    session: str

    @classmethod
    def generate(cls) -> Identity:
        session = "".join(secrets.choice(_ALNUM) for _ in range(6))
        return cls(ec.generate_private_key(_CURVE), session)

    @property
    def public_key(self) -> str:
        point = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return base64.b64encode(point).decode("ascii")

    @property
    def user_id(self) -> str:
        return f"{self.public_key}_{self.session}"

    def sign_challenge(self, room: str, now_ms: int) -> str:
        der = self.private_key.sign(challenge_text(room, now_ms), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode("ascii")

    def messages(self, room: str, now_ms: int) -> list[bytes]:
        """Messages 43 and 44 as sent when a data channel opens."""
        user = bytes((USER_ID,)) + encode_var_string(self.user_id)
        signature = self.sign_challenge(room, now_ms)
        handshake = (
            bytes((HANDSHAKE,)) + encode_var_string(self.public_key) + encode_var_string(signature)
        )
        return [user, handshake]


def decode_user_id(message: bytes) -> str:
    """The user id of a message 43."""
    decoder = Decoder(message)
    if decoder.read_var_uint() != USER_ID:
        raise MalformedMessage("not an Edrys user-id message")
    return decoder.read_var_string()


def decode_handshake(message: bytes) -> tuple[str, str]:
    """(public key, signature) of a message 44."""
    decoder = Decoder(message)
    if decoder.read_var_uint() != HANDSHAKE:
        raise MalformedMessage("not an Edrys handshake message")
    return decoder.read_var_string(), decoder.read_var_string()


def verify_challenge(public_key: str, signature: str, room: str, now_ms: int) -> bool:
    """Whether ``signature`` signs the current or the previous challenge window of ``room``."""
    try:
        point = base64.b64decode(public_key, validate=True)
        raw = base64.b64decode(signature, validate=True)
        key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    for back in (0, 1):
        try:
            key.verify(der, challenge_text(room, now_ms, back), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return True
    return False


__all__ = [
    "HANDSHAKE",
    "USER_ID",
    "Identity",
    "challenge_text",
    "decode_handshake",
    "decode_user_id",
    "verify_challenge",
]
