"""y-webrtc signaling encryption (protocols.md §4.5), against blobs made by y-webrtc's crypto.js."""

from __future__ import annotations

import base64

import pytest

from edrys_relay.protocol.anyenc import encode_any
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage, MessageTooBig
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt, open_blob, seal

from .test_anyenc import SIGNAL

ROOM = "AbCdEfGhIjKlMnOp"
KEY_HEX = "56c048d01cbec44bc4e06a8b1975eade1f5720d07341d5d6122844eacbc5a70f"  # §4.5
ANNOUNCE = {"type": "announce", "from": "x"}
IV = bytes(range(12))

# Made by y-webrtc 10.3.0 src/crypto.js encryptJson in Node 20 with the IV pinned to 00..0b.
JS_ANNOUNCE_FIXED_IV = (
    "B0FFUy1HQ00MAAECAwQFBgcICQoLKS5LK2VIu0o40XDd42svf8Uxu12TB+pGU+UIC6L/BGLSt7Vr2uP0or50"
)
# Same, with a random IV chosen by WebCrypto.
JS_SIGNAL_RANDOM_IV = (
    "B0FFUy1HQ00M0MFrKveQEsYQyhwlvQE9CUzJZonAc77VAQ5bU1VoS+X1hfalu7Iv6eYLksupieQ1okffTU6Al/O7"
    "EO+AhBZtulXCjhpWuNbXhLHUG3ZthEX5ftzCNGOF2MHuuZGRMxunkXBE9qyzudSz4o/Ij45sb57Nv8NjlK1vWwat"
    "rNsDuK38H+4eMciKMo4ZWiM2rsuoKfO1QrX80orvjIQPmCUioGgIpL+tUfEfFKY0W0fcoa+l+lzPUqo0shsI6bxs"
    "21of6WlHYBPClBBlCC4="
)


@pytest.fixture(scope="module")
def key() -> bytes:
    return derive_key("password", ROOM)


def test_known_key_vector(key: bytes) -> None:
    assert key.hex() == KEY_HEX


def test_key_non_ascii() -> None:
    # crypto.js deriveKey("pässwörd", "Raum/ü 1"), UTF-8 for both
    expected = "35df5fb0af4ae6df136c108403c4f12104752fb400fd16fbe7e271dddf0555d1"
    assert derive_key("pässwörd", "Raum/ü 1").hex() == expected


def test_encrypt_fixed_iv_matches_js_bytes(key: bytes) -> None:
    assert encrypt(key, ANNOUNCE, iv=IV) == JS_ANNOUNCE_FIXED_IV


def test_decrypt_js_blobs(key: bytes) -> None:
    assert decrypt(key, JS_ANNOUNCE_FIXED_IV) == ANNOUNCE
    assert decrypt(key, JS_SIGNAL_RANDOM_IV) == SIGNAL


def test_blob_layout(key: bytes) -> None:
    blob = base64.b64decode(encrypt(key, ANNOUNCE, iv=IV))
    assert blob[:8] == bytes.fromhex("07 41 45 53 2d 47 43 4d")
    assert blob[8] == 12 and blob[9:21] == IV
    plaintext_len = len(encode_any(ANNOUNCE))
    assert blob[21] == plaintext_len + 16 and len(blob) == 22 + plaintext_len + 16


def test_random_iv_round_trip(key: bytes) -> None:
    a, b = encrypt(key, SIGNAL), encrypt(key, SIGNAL)
    assert a != b
    assert decrypt(key, a) == decrypt(key, b) == SIGNAL


def test_wrong_key_is_invalid_payload(key: bytes) -> None:
    other = derive_key("password", ROOM + "x")
    with pytest.raises(InvalidPayload):
        decrypt(other, JS_ANNOUNCE_FIXED_IV)


def test_tampered_ciphertext(key: bytes) -> None:
    blob = bytearray(base64.b64decode(JS_ANNOUNCE_FIXED_IV))
    blob[-1] ^= 1
    with pytest.raises(InvalidPayload):
        decrypt(key, base64.b64encode(bytes(blob)).decode())


def test_missing_padding_tolerated(key: bytes) -> None:
    text = encrypt(key, {"type": "announce", "from": "xy"}, iv=IV)
    assert text.endswith("=")
    assert decrypt(key, text.rstrip("=")) == {"type": "announce", "from": "xy"}


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        "é",
        _b64(b""),
        _b64(b"\x07AES-GCX" + b"\x0c" + bytes(12) + b"\x10" + bytes(16)),  # other algorithm
        _b64(b"\x07AES-GCM" + b"\x0b" + bytes(11) + b"\x10" + bytes(16)),  # 11-byte IV
        _b64(b"\x07AES-GCM" + b"\x0c" + bytes(12) + b"\x0f" + bytes(15)),  # shorter than tag
        _b64(b"\x07AES-GCM" + b"\x0c" + bytes(12) + b"\x20" + bytes(16)),  # truncated
        _b64(b"\x07AES-GCM" + b"\x0c" + bytes(12) + b"\x10" + bytes(16) + b"x"),  # trailing
    ],
)
def test_malformed_blobs(key: bytes, data: str) -> None:
    with pytest.raises(MalformedMessage):
        decrypt(key, data)


def test_plaintext_not_any_is_malformed(key: bytes) -> None:
    blob = seal(key, b"\x7e\x7e", iv=IV)  # two values: trailing bytes
    with pytest.raises(MalformedMessage):
        decrypt(key, _b64(blob))
    assert open_blob(key, blob) == b"\x7e\x7e"


def test_size_bound(key: bytes) -> None:
    big = encrypt(key, "x" * 5000)
    with pytest.raises(MessageTooBig):
        decrypt(key, big, max_size=1000)
    assert decrypt(key, big) == "x" * 5000


def test_bad_key_length() -> None:
    with pytest.raises(ValueError):
        encrypt(b"short", ANNOUNCE)
