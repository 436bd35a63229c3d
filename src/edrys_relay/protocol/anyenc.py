"""lib0 ``writeAny`` / ``readAny``: the self-describing value encoding of protocols.md §1.

y-webrtc encrypts its signaling payloads as ``writeAny(object)`` (§4.5), so a Python peer needs
both directions. One tag byte precedes every value:

==== ============ ==========================================================================
tag  JS value     Python value
==== ============ ==========================================================================
127  undefined    :data:`UNDEFINED`
126  null         ``None``
125  integer      ``int`` (varInt); written for integral numbers with ``abs <= 2**31 - 1``
124  float32      ``float`` (4 bytes BE); written when the number survives a float32 round trip
123  float64      ``float`` (8 bytes BE)
122  bigint       :class:`JsBigInt` (8 bytes BE, signed)
121  false        ``False``
120  true         ``True``
119  string       ``str`` (varString)
118  object       ``dict[str, Any]`` (varUint count, then key/value pairs; order preserved)
117  array        ``list`` (varUint count, then values); tuples are written as arrays too
116  Uint8Array   ``bytes`` (varUint8Array); ``bytearray``/``memoryview`` are written as bytes
==== ============ ==========================================================================

The encoder chooses the tag for a number exactly as lib0 does for a JS ``number``: Python ``int``
and ``float`` are both treated as a JS number, so ``1.0`` is written as the integer ``1`` and
``2**32`` as a float32. An ``int`` that a JS number cannot hold exactly is refused (wrap it in
:class:`JsBigInt` to send a bigint). ``-0.0`` is written as the varInt "negative zero" and read
back as ``-0.0``.

The decoder is bounded: the input size, the nesting depth and every count are checked, and every
error is a :class:`~edrys_relay.protocol.errors.MalformedMessage` (or
:class:`~edrys_relay.protocol.errors.MessageTooBig` for an oversized input). Since every value
takes at least one byte, the number of Python objects built is at most the input size.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

from edrys_relay.protocol.errors import MalformedMessage, MessageTooBig
from edrys_relay.protocol.lib0 import (
    Decoder,
    encode_var_int,
    encode_var_uint,
    encode_var_uint8array,
)

TAG_UNDEFINED: Final = 127
TAG_NULL: Final = 126
TAG_INTEGER: Final = 125
TAG_FLOAT32: Final = 124
TAG_FLOAT64: Final = 123
TAG_BIGINT: Final = 122
TAG_FALSE: Final = 121
TAG_TRUE: Final = 120
TAG_STRING: Final = 119
TAG_OBJECT: Final = 118
TAG_ARRAY: Final = 117
TAG_BYTES: Final = 116

BITS31: Final = 0x7FFFFFFF
MAX_SAFE_FLOAT_INT: Final = 2**53

#: Default bound on nesting of objects/arrays (signaling payloads nest 3 levels deep).
DEFAULT_MAX_DEPTH: Final = 32
#: Default bound on the encoded size accepted by :func:`decode_any` (1 MiB).
DEFAULT_MAX_SIZE: Final = 1 << 20

_FLOAT32 = struct.Struct(">f")
_FLOAT64 = struct.Struct(">d")
_INT64 = struct.Struct(">q")


class _Undefined:
    """The JS ``undefined`` value (tag 127). Use the singleton :data:`UNDEFINED`."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


class JsBigInt(int):
    """An ``int`` that is written as a JS ``bigint`` (tag 122, signed 64-bit big-endian)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JsBigInt({int(self)})"


# --------------------------------------------------------------------------- encoding


def _is_float32(value: float) -> bool:
    try:
        packed = _FLOAT32.pack(value)
    except OverflowError:
        return False
    result: float = _FLOAT32.unpack(packed)[0]
    return result == value  # NaN != NaN, like lib0's `===` test


def _utf8(text: str) -> bytes:
    """UTF-8 as a JS TextEncoder produces it: lone surrogates become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Python may hold surrogate halves (e.g. from JSON "\\ud83d\\ude00"); JS pairs them and
        # replaces unpaired ones. Going through UTF-16 does exactly that.
        paired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return paired.encode("utf-8")


def _write_number(out: bytearray, value: float, negative_zero: bool = False) -> None:
    if value.is_integer() and abs(value) <= BITS31:
        out.append(TAG_INTEGER)
        if negative_zero:
            out.append(0x40)  # lib0 varInt with only the sign bit set
        else:
            out += encode_var_int(int(value))
    elif _is_float32(value):
        out.append(TAG_FLOAT32)
        out += _FLOAT32.pack(value)
    else:
        out.append(TAG_FLOAT64)
        out += _FLOAT64.pack(value)


def _write(out: bytearray, value: Any, depth: int, max_depth: int) -> None:
    if value is None:
        out.append(TAG_NULL)
    elif value is UNDEFINED:
        out.append(TAG_UNDEFINED)
    elif value is True:
        out.append(TAG_TRUE)
    elif value is False:
        out.append(TAG_FALSE)
    elif isinstance(value, JsBigInt):
        if not -(2**63) <= value < 2**63:
            raise ValueError("bigint does not fit in 64 bits")
        out.append(TAG_BIGINT)
        out += _INT64.pack(int(value))
    elif isinstance(value, int):
        if abs(value) <= BITS31:
            out.append(TAG_INTEGER)
            out += encode_var_int(value)
        else:
            try:
                as_float = float(value)
            except OverflowError:
                as_float = math.inf
            if as_float != value:
                raise ValueError(f"integer {value} is not exactly representable as a JS number")
            _write_number(out, as_float)
    elif isinstance(value, float):
        _write_number(out, value, negative_zero=value == 0.0 and math.copysign(1.0, value) < 0)
    elif isinstance(value, str):
        out.append(TAG_STRING)
        out += encode_var_uint8array(_utf8(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append(TAG_BYTES)
        out += encode_var_uint8array(bytes(value))
    elif isinstance(value, dict):
        if depth >= max_depth:
            raise ValueError("value nested too deeply")
        out.append(TAG_OBJECT)
        out += encode_var_uint(len(value))
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be str, not {type(key).__name__}")
            out += encode_var_uint8array(_utf8(key))
            _write(out, item, depth + 1, max_depth)
    elif isinstance(value, list | tuple):
        if depth >= max_depth:
            raise ValueError("value nested too deeply")
        out.append(TAG_ARRAY)
        out += encode_var_uint(len(value))
        for item in value:
            _write(out, item, depth + 1, max_depth)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} with writeAny")


def encode_any(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Return lib0 ``writeAny(value)``.

    Raises ``TypeError`` for values JS cannot represent (sets, non-str keys, arbitrary objects)
    and ``ValueError`` for integers no JS number holds exactly, or nesting beyond ``max_depth``
    (which also stops reference cycles).
    """
    out = bytearray()
    _write(out, value, 0, max_depth)
    return bytes(out)


# --------------------------------------------------------------------------- decoding


def _read(decoder: Decoder, depth: int, max_depth: int) -> Any:
    tag = decoder.read_uint8()
    if tag == TAG_STRING:
        return decoder.read_var_string()
    if tag == TAG_INTEGER:
        pos = decoder.pos
        result = decoder.read_var_int()
        if result == 0 and decoder.data[pos] & 0x40:
            return -0.0
        return result
    if tag in (TAG_OBJECT, TAG_ARRAY):
        if depth >= max_depth:
            raise MalformedMessage("readAny: nesting too deep")
        count = decoder.read_var_uint()
        # each array item takes >= 1 byte, each object entry >= 2 (key length + value tag)
        if count * (2 if tag == TAG_OBJECT else 1) > decoder.remaining:
            raise MalformedMessage("readAny: count exceeds remaining data")
        if tag == TAG_ARRAY:
            return [_read(decoder, depth + 1, max_depth) for _ in range(count)]
        obj: dict[str, Any] = {}
        for _ in range(count):
            key = decoder.read_var_string()
            obj[key] = _read(decoder, depth + 1, max_depth)
        return obj
    if tag == TAG_NULL:
        return None
    if tag == TAG_TRUE:
        return True
    if tag == TAG_FALSE:
        return False
    if tag == TAG_FLOAT64:
        value64: float = _FLOAT64.unpack(decoder.read_bytes(8))[0]
        return value64
    if tag == TAG_FLOAT32:
        value32: float = _FLOAT32.unpack(decoder.read_bytes(4))[0]
        return value32
    if tag == TAG_BYTES:
        return decoder.read_var_uint8array()
    if tag == TAG_UNDEFINED:
        return UNDEFINED
    if tag == TAG_BIGINT:
        return JsBigInt(_INT64.unpack(decoder.read_bytes(8))[0])
    raise MalformedMessage(f"readAny: unknown tag {tag}")


def read_any(decoder: Decoder, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Read one ``writeAny`` value from ``decoder`` (lib0 ``readAny``), advancing it."""
    return _read(decoder, 0, max_depth)


def decode_any(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Any:
    """Decode a buffer that holds exactly one ``writeAny`` value.

    Unlike lib0, trailing bytes are an error: y-webrtc never sends any.
    """
    if len(data) > max_size:
        raise MessageTooBig(f"readAny input of {len(data)} bytes exceeds {max_size}")
    decoder = Decoder(bytes(data))
    value = _read(decoder, 0, max_depth)
    if not decoder.at_end():
        raise MalformedMessage("readAny: trailing bytes after value")
    return value


__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "UNDEFINED",
    "JsBigInt",
    "decode_any",
    "encode_any",
    "read_any",
]
