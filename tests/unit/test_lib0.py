"""lib0 primitives: the byte vectors of protocols.md §1, both directions, and hostile inputs."""

import pytest

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import (
    MAX_SAFE_INTEGER,
    Decoder,
    encode_var_int,
    encode_var_string,
    encode_var_uint,
    encode_var_uint8array,
)

VAR_UINTS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (1234, "d209"),
    (2**32, "8080808010"),
    (MAX_SAFE_INTEGER, "ffffffffffffff0f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VAR_UINTS)
def test_var_uint_round_trip(value: int, hex_bytes: str) -> None:
    assert encode_var_uint(value).hex() == hex_bytes
    decoder = Decoder(bytes.fromhex(hex_bytes))
    assert decoder.read_var_uint() == value
    assert decoder.at_end()


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "",  # empty
        "80",  # continuation bit at the end
        "ffffffff",  # truncated
        "ffffffffffffffff01",  # 9 bytes: longer than lib0 allows
        "ffffffffffffff7f",  # 8 bytes but above 2^53
        "ff" * 100_000,  # a long run of 0xff is rejected after 8 bytes, not parsed
    ],
)
def test_var_uint_rejects_bad_input(hex_bytes: str) -> None:
    with pytest.raises(MalformedMessage):
        Decoder(bytes.fromhex(hex_bytes)).read_var_uint()


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -64, 1234, -1234, 2**31 - 1, -(2**31)])
def test_var_int_round_trip(value: int) -> None:
    assert Decoder(encode_var_int(value)).read_var_int() == value


def test_var_int_layout() -> None:
    # first byte: continue bit, sign bit, 6 value bits (protocols.md §1)
    assert encode_var_int(-1).hex() == "41"
    assert encode_var_int(64).hex() == "8001"


def test_uint8array_and_string() -> None:
    assert encode_var_uint8array(b"abc").hex() == "03616263"
    assert encode_var_string("é").hex() == "02c3a9"
    decoder = Decoder(bytes.fromhex("02c3a9" + "0161"))
    assert decoder.read_var_string() == "é"
    assert decoder.read_var_uint8array() == b"a"


@pytest.mark.parametrize("hex_bytes", ["05616263", "ffffffffffffff0f00", "02c3"])
def test_length_beyond_data_is_rejected(hex_bytes: str) -> None:
    with pytest.raises(MalformedMessage):
        Decoder(bytes.fromhex(hex_bytes)).read_var_uint8array()


def test_invalid_utf8_string_is_rejected() -> None:
    with pytest.raises(MalformedMessage):
        Decoder(bytes.fromhex("01ff")).read_var_string()
