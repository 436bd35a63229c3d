"""lib0 writeAny/readAny (protocols.md §1): byte vectors produced by lib0's JS writeAny."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edrys_relay.protocol.anyenc import (
    UNDEFINED,
    JsBigInt,
    decode_any,
    encode_any,
    read_any,
)
from edrys_relay.protocol.errors import MalformedMessage, MessageTooBig
from edrys_relay.protocol.lib0 import Decoder

SIGNAL = {
    "to": "b",
    "from": "a",
    "type": "signal",
    "token": 1700000000000.25,
    "signal": {
        "type": "candidate",
        "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 10.233.0.1 50000 typ host",
            "sdpMLineIndex": 0,
            "sdpMid": "0",
        },
    },
}

# (value, hex of lib0 writeAny(value)) — hex produced by running lib0 0.2.114 in Node 20.
JS_VECTORS: list[tuple[object, str]] = [
    (UNDEFINED, "7f"),
    (None, "7e"),
    (0, "7d00"),
    (63, "7d3f"),
    (64, "7d8001"),
    (-1, "7d41"),
    (-123456, "7dc0890f"),
    (2147483647, "7dbfffffff0f"),
    (-2147483647, "7dffffffff0f"),
    (2147483648, "7c4f000000"),
    (4294967296, "7c4f800000"),
    (0.5, "7c3f000000"),
    (0.1, "7b3fb999999999999a"),
    (1764115200123.4567, "7b4279abd75b87b74f"),
    (math.inf, "7c7f800000"),
    (1e300, "7b7e37e43c8800759c"),
    (JsBigInt(2**62), "7a4000000000000000"),
    (JsBigInt(-5), "7afffffffffffffffb"),
    (False, "79"),
    (True, "78"),
    ("héllo 😀", "770b68c3a96c6c6f20f09f9880"),
    ("", "7700"),
    ({"type": "announce", "from": "x"}, "760204747970657708616e6e6f756e63650466726f6d770178"),
    ([1, "a", None, []], "75047d017701617e7500"),
    (b"\x01\x02\xff", "74030102ff"),
    ({"a": UNDEFINED, "b": 1}, "760201617f01627d01"),
    (
        SIGNAL,
        "760502746f7701620466726f6d770161047479706577067369676e616c05746f6b656e7b4278bcfe5680"
        "0400067369676e616c76020474797065770963616e6469646174650963616e6469646174657603096361"
        "6e646964617465773663616e6469646174653a3120312075647020323132323236303232332031302e32"
        "33332e302e312035303030302074797020686f73740d7364704d4c696e65496e6465787d00067364704d"
        "6964770130",
    ),
]


@pytest.mark.parametrize(("value", "hexstr"), JS_VECTORS, ids=[h[:16] for _, h in JS_VECTORS])
def test_encode_matches_js(value: object, hexstr: str) -> None:
    assert encode_any(value).hex() == hexstr


@pytest.mark.parametrize(("value", "hexstr"), JS_VECTORS, ids=[h[:16] for _, h in JS_VECTORS])
def test_decode_js_bytes(value: object, hexstr: str) -> None:
    decoded = decode_any(bytes.fromhex(hexstr))
    assert decoded == value
    assert type(decoded) is type(value) or isinstance(value, int | float)
    assert encode_any(decoded).hex() == hexstr


def test_negative_zero_round_trip() -> None:
    assert encode_any(-0.0).hex() == "7d40"  # JS writeAny(-0)
    value = decode_any(bytes.fromhex("7d40"))
    assert value == 0 and math.copysign(1.0, value) < 0


def test_nan() -> None:
    assert encode_any(math.nan).hex() == "7b7ff8000000000000"
    assert math.isnan(decode_any(bytes.fromhex("7b7ff8000000000000")))


def test_number_tag_choice_like_js() -> None:
    assert encode_any(1.0) == encode_any(1)  # JS has one number type
    assert encode_any(2**53) == bytes.fromhex("7c5a000000")  # exact float32
    assert encode_any(2**53 + 1 - 1) == encode_any(float(2**53))
    with pytest.raises(ValueError):
        encode_any(2**53 + 1)  # no JS number holds it
    with pytest.raises(ValueError):
        encode_any(10**400)


def test_lone_surrogate_like_text_encoder() -> None:
    assert encode_any("a\ud800b").hex() == "770561efbfbd62"
    # a surrogate pair held as two code points is encoded as the character it forms
    assert encode_any("\ud83d\ude00") == encode_any("😀")


def test_tuple_bytearray_memoryview() -> None:
    assert encode_any((1, 2)) == encode_any([1, 2])
    assert encode_any(bytearray(b"ab")) == encode_any(memoryview(b"ab")) == encode_any(b"ab")


@pytest.mark.parametrize("bad", [{1: 2}, {1, 2}, object(), 1j])
def test_encode_rejects_non_js(bad: object) -> None:
    with pytest.raises(TypeError):
        encode_any(bad)


def test_encode_depth_and_cycles() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        encode_any(cyclic)
    deep: object = 1
    for _ in range(10):
        deep = [deep]
    encode_any(deep, max_depth=10)
    with pytest.raises(ValueError):
        encode_any(deep, max_depth=9)
    with pytest.raises(ValueError):
        encode_any(JsBigInt(2**63))


def test_read_any_from_decoder_leaves_rest() -> None:
    dec = Decoder(bytes.fromhex("7d017e") + b"rest")
    assert read_any(dec) == 1
    assert read_any(dec) is None
    assert dec.remaining == 4


@pytest.mark.parametrize(
    "hexstr",
    [
        "",  # no tag
        "73",  # unknown tag 115
        "80",  # unknown tag 128
        "00",
        "7d",  # truncated varInt
        "7d80",
        "7c0000",  # truncated float32
        "7b00000000000000",  # truncated float64
        "7a00",  # truncated bigint
        "7705616263",  # string shorter than its length
        "7702ffff",  # invalid UTF-8
        "7603",  # object count beyond data
        "760101617d",  # object value truncated (varInt body missing)
        "7502",  # array count beyond data
        "75ffffffffffffffff7f",  # absurd count (varUint too long)
        "7405aabb",  # bytes shorter than length
        "7e00",  # trailing bytes
    ],
)
def test_decode_malformed(hexstr: str) -> None:
    with pytest.raises(MalformedMessage):
        decode_any(bytes.fromhex(hexstr))


def test_decode_depth_bound() -> None:
    data = bytes.fromhex("7501") * 40 + bytes.fromhex("7e")
    with pytest.raises(MalformedMessage):
        decode_any(data)
    assert decode_any(data, max_depth=40) is not None
    deep_obj = bytes.fromhex("76010161") * 5 + bytes.fromhex("7e")
    with pytest.raises(MalformedMessage):
        decode_any(deep_obj, max_depth=4)


def test_decode_size_bound() -> None:
    with pytest.raises(MessageTooBig):
        decode_any(encode_any("x" * 100), max_size=50)


def test_decode_count_vs_remaining_is_cheap() -> None:
    # 2^53-1 claimed items in a few bytes fails at once instead of looping
    with pytest.raises(MalformedMessage):
        decode_any(bytes.fromhex("75ffffffffffffff0f"))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31) + 1, max_value=2**31 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_like)
def test_round_trip_property(value: object) -> None:
    encoded = encode_any(value)
    decoded = decode_any(encoded)
    assert encode_any(decoded) == encoded
    assert decoded == value


@given(st.binary(max_size=64))
def test_decode_garbage_only_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        decode_any(data)
