"""Bounded readers and writers for the lib0 binary primitives used by Yjs and y-protocols.

protocols.md §1: varUint is little-endian base-128 with 0x80 as "more follows"; lib0 accepts
values up to 2^53, which needs at most 8 bytes. Every length is checked against the bytes that
remain, so a hostile length prefix can never make us allocate or loop more than the input size.
"""

from __future__ import annotations

from edrys_relay.protocol.errors import MalformedMessage

MAX_VAR_UINT_BYTES = 8
MAX_SAFE_INTEGER = 2**53 - 1


class Decoder:
    """Reads lib0 primitives from a bytes-like buffer, raising MalformedMessage on any overrun."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def read_uint8(self) -> int:
        if self.pos >= self.end:
            raise MalformedMessage("unexpected end of data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def read_var_uint(self) -> int:
        """Read a varUint of at most 8 bytes whose value does not exceed 2^53 - 1."""
        data, pos, end = self.data, self.pos, self.end
        if pos < end:
            first = data[pos]
            if first < 0x80:  # fast path: one byte, the common case for types and small lengths
                self.pos = pos + 1
                return first
        value = 0
        shift = 0
        for _ in range(MAX_VAR_UINT_BYTES):
            if pos >= end:
                raise MalformedMessage("truncated varUint")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if value > MAX_SAFE_INTEGER:
                    raise MalformedMessage("varUint exceeds 2^53")
                self.pos = pos
                return value
            shift += 7
        raise MalformedMessage("varUint longer than 8 bytes")

    def read_var_int(self) -> int:
        """Read a lib0 varInt (sign-magnitude; 6 value bits in the first byte)."""
        first = self.read_uint8()
        negative = bool(first & 0x40)
        value = first & 0x3F
        shift = 6
        byte = first
        count = 1
        while byte & 0x80:
            if count >= MAX_VAR_UINT_BYTES:
                raise MalformedMessage("varInt longer than 8 bytes")
            byte = self.read_uint8()
            value |= (byte & 0x7F) << shift
            shift += 7
            count += 1
        if value > MAX_SAFE_INTEGER:
            raise MalformedMessage("varInt exceeds 2^53")
        return -value if negative else value

    def read_bytes(self, length: int) -> bytes:
        if length > self.end - self.pos:
            raise MalformedMessage("length exceeds remaining data")
        start = self.pos
        self.pos = start + length
        return bytes(self.data[start : self.pos])

    def read_var_uint8array(self) -> bytes:
        return self.read_bytes(self.read_var_uint())

    def read_var_uint8array_bounds(self) -> tuple[int, int]:
        """Return (start, end) of a varUint8Array without copying it."""
        length = self.read_var_uint()
        if length > self.end - self.pos:
            raise MalformedMessage("length exceeds remaining data")
        start = self.pos
        self.pos = start + length
        return start, self.pos

    def read_var_string(self) -> str:
        raw = self.read_var_uint8array()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("invalid UTF-8 in string") from exc


def encode_var_uint(value: int) -> bytes:
    """Encode a non-negative integer as a lib0 varUint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_var_int(value: int) -> bytes:
    """Encode an integer as a lib0 varInt (sign-magnitude)."""
    negative = value < 0
    magnitude = -value if negative else value
    first = (magnitude & 0x3F) | (0x40 if negative else 0)
    magnitude >>= 6
    out = bytearray()
    out.append(first | (0x80 if magnitude else 0))
    while magnitude:
        byte = magnitude & 0x7F
        magnitude >>= 7
        out.append(byte | (0x80 if magnitude else 0))
    return bytes(out)


def encode_var_uint8array(data: bytes) -> bytes:
    return encode_var_uint(len(data)) + data


def encode_var_string(text: str) -> bytes:
    return encode_var_uint8array(text.encode("utf-8"))


__all__ = [
    "MAX_SAFE_INTEGER",
    "MAX_VAR_UINT_BYTES",
    "Decoder",
    "encode_var_int",
    "encode_var_string",
    "encode_var_uint",
    "encode_var_uint8array",
]
