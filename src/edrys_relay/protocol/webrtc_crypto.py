"""y-webrtc signaling encryption (protocols.md §4.5), compatible with y-webrtc's ``src/crypto.js``.

* Key: PBKDF2-HMAC-SHA-256 over the UTF-8 password with the UTF-8 room name as salt,
  100 000 iterations, 32 bytes, used as an AES-256-GCM key.
* Blob: varString ``"AES-GCM"`` ‖ varUint8Array(12-byte IV) ‖ varUint8Array(ciphertext ‖ 16-byte
  tag), no associated data. The plaintext is lib0 ``writeAny(object)``.
* On the signaling wire the blob travels base64-encoded (standard alphabet, padded) as the
  ``data`` of a ``publish`` message.

Edrys always sets a password (the literal ``"password"``, §5.1), so the room name is the only
secret.

Errors: anything that is not a well-formed blob raises
:class:`~edrys_relay.protocol.errors.MalformedMessage`; a blob that fails authentication (wrong
key, tampered data) raises :class:`~edrys_relay.protocol.errors.InvalidPayload`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edrys_relay.protocol.anyenc import DEFAULT_MAX_SIZE, decode_any, encode_any
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage, MessageTooBig
from edrys_relay.protocol.lib0 import Decoder, encode_var_string, encode_var_uint8array

ALGORITHM: Final = "AES-GCM"
PBKDF2_ITERATIONS: Final = 100_000
KEY_BYTES: Final = 32
IV_BYTES: Final = 12
TAG_BYTES: Final = 16
#: Default bound on a decoded blob (signaling payloads are a few KiB: an SDP at most).
DEFAULT_MAX_BLOB: Final = DEFAULT_MAX_SIZE

_ALGORITHM_PREFIX: Final = encode_var_string(ALGORITHM)


@functools.lru_cache(maxsize=64)
def derive_key(password: str, room_name: str) -> bytes:
    """Return the 32-byte AES key y-webrtc derives for ``password`` in ``room_name``.

    PBKDF2 with 100 000 rounds costs tens of milliseconds, so results are cached.
    """
    return hashlib.pbkdf2_hmac(
        "sha256",
        password.encode("utf-8"),
        room_name.encode("utf-8"),
        PBKDF2_ITERATIONS,
        KEY_BYTES,
    )


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"key must be {KEY_BYTES} bytes, got {len(key)}")


def seal(key: bytes, plaintext: bytes, *, iv: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` into the binary blob of ``crypto.js`` ``encrypt``.

    ``iv`` is for reproducible tests only; by default 12 random bytes are used. Never reuse an IV
    with the same key.
    """
    _check_key(key)
    if iv is None:
        iv = os.urandom(IV_BYTES)
    elif len(iv) != IV_BYTES:
        raise ValueError(f"iv must be {IV_BYTES} bytes")
    ciphertext = AESGCM(key).encrypt(iv, plaintext, None)
    return _ALGORITHM_PREFIX + encode_var_uint8array(iv) + encode_var_uint8array(ciphertext)


def open_blob(key: bytes, blob: bytes, *, max_size: int = DEFAULT_MAX_BLOB) -> bytes:
    """Decrypt a blob made by ``crypto.js`` ``encrypt`` (or :func:`seal`), returning the plaintext.

    Unlike ``crypto.js`` (which does not actually enforce it), the algorithm name must be
    ``"AES-GCM"``; the IV must be 12 bytes, and nothing may follow the ciphertext.
    """
    _check_key(key)
    if len(blob) > max_size:
        raise MessageTooBig(f"encrypted blob of {len(blob)} bytes exceeds {max_size}")
    decoder = Decoder(blob)
    if decoder.read_var_string() != ALGORITHM:
        raise MalformedMessage("unknown encryption algorithm")
    iv = decoder.read_var_uint8array()
    if len(iv) != IV_BYTES:
        raise MalformedMessage(f"IV must be {IV_BYTES} bytes")
    ciphertext = decoder.read_var_uint8array()
    if not decoder.at_end():
        raise MalformedMessage("trailing bytes after ciphertext")
    if len(ciphertext) < TAG_BYTES:
        raise MalformedMessage("ciphertext shorter than the GCM tag")
    try:
        return AESGCM(key).decrypt(iv, ciphertext, None)
    except InvalidTag as exc:
        raise InvalidPayload("decryption failed (wrong key or tampered data)") from exc


def encrypt(key: bytes, obj: Any, *, iv: bytes | None = None) -> str:
    """Return the base64 text y-webrtc publishes for ``obj``: base64(seal(writeAny(obj)))."""
    return base64.b64encode(seal(key, encode_any(obj), iv=iv)).decode("ascii")


def decrypt(key: bytes, data: str | bytes, *, max_size: int = DEFAULT_MAX_BLOB) -> Any:
    """Decrypt the base64 ``data`` of a y-webrtc ``publish`` and return the decoded object.

    Missing base64 padding is tolerated (browsers' ``atob`` tolerates it); any other deviation from
    the standard alphabet is an error.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MalformedMessage("encrypted data is not base64") from exc
    else:
        raw = bytes(data)
    # base64 is 4/3 of the blob; bound before decoding
    if len(raw) > (max_size // 3 + 1) * 4:
        raise MessageTooBig("encrypted data too large")
    raw += b"=" * (-len(raw) % 4)
    try:
        blob = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise MalformedMessage("encrypted data is not base64") from exc
    return decode_any(open_blob(key, blob, max_size=max_size), max_size=max_size)


__all__ = [
    "ALGORITHM",
    "IV_BYTES",
    "KEY_BYTES",
    "PBKDF2_ITERATIONS",
    "decrypt",
    "derive_key",
    "encrypt",
    "open_blob",
    "seal",
]
