"""A bounded scan of a Yjs v1 update: which clock ranges it touches, without decoding content.

The relay needs one fact about an update that pycrdt cannot tell: does it reach beyond what a
document already holds? An update whose dependencies are missing is held back by Yrs as
"pending" and fires no event, yet its bytes must be kept and relayed (protocols.md §2.9).
The scan walks the struct section (yjs ``writeStructs``/``Item.write``) and the delete set,
skipping content by its encoded size; every length is bounded by the bytes that remain.
"""

from __future__ import annotations

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import Decoder

_ORIGIN = 0x80
_RIGHT_ORIGIN = 0x40
_PARENT_SUB = 0x20
_GC, _SKIP = 0, 10
_MAX_ANY_DEPTH = 64


def update_extent(update: bytes) -> dict[int, int]:
    """Return, per client, the highest clock (exclusive) the update's structs or deletes reach.

    Raises:
        MalformedMessage: the update is truncated or malformed.
    """
    decoder = Decoder(update)
    extent: dict[int, int] = {}
    for _ in range(_count(decoder)):
        structs = _count(decoder)
        client = decoder.read_var_uint()
        clock = decoder.read_var_uint()
        for _ in range(structs):
            clock += _struct_length(decoder)
        extent[client] = max(extent.get(client, 0), clock)
    for _ in range(_count(decoder)):
        client = decoder.read_var_uint()
        for _ in range(_count(decoder)):
            start = decoder.read_var_uint()
            end = start + decoder.read_var_uint()
            if end > extent.get(client, 0):
                extent[client] = end
    return extent


def _count(decoder: Decoder) -> int:
    """A count of following entries; each takes at least one byte, so bound it by the input."""
    count = decoder.read_var_uint()
    if count > decoder.remaining:
        raise MalformedMessage("count exceeds the remaining bytes")
    return count


def _struct_length(decoder: Decoder) -> int:
    info = decoder.read_uint8()
    ref = info & 0x1F
    if ref in (_GC, _SKIP):
        return decoder.read_var_uint()
    if info & _ORIGIN:
        decoder.read_var_uint()
        decoder.read_var_uint()
    if info & _RIGHT_ORIGIN:
        decoder.read_var_uint()
        decoder.read_var_uint()
    if not info & (_ORIGIN | _RIGHT_ORIGIN):
        if decoder.read_var_uint() == 1:
            decoder.read_var_uint8array()  # parent is a root type: its name
        else:
            decoder.read_var_uint()  # parent is an item: its ID
            decoder.read_var_uint()
        if info & _PARENT_SUB:
            decoder.read_var_uint8array()
    return _content_length(decoder, ref)


def _content_length(decoder: Decoder, ref: int) -> int:
    if ref == 1:  # ContentDeleted
        return decoder.read_var_uint()
    if ref == 2:  # ContentJSON: n JSON strings
        count = _count(decoder)
        for _ in range(count):
            decoder.read_var_uint8array()
        return count
    if ref in (3, 5):  # ContentBinary, ContentEmbed
        decoder.read_var_uint8array()
        return 1
    if ref == 4:  # ContentString: length in UTF-16 code units
        raw = decoder.read_var_uint8array()
        try:
            return len(raw.decode("utf-8").encode("utf-16-le")) // 2
        except UnicodeDecodeError as exc:
            raise MalformedMessage("invalid UTF-8 in string content") from exc
    if ref == 6:  # ContentFormat: key, JSON value
        decoder.read_var_uint8array()
        decoder.read_var_uint8array()
        return 1
    if ref == 7:  # ContentType: type ref, and a name for XmlElement (3) / XmlHook (5)
        if decoder.read_var_uint() in (3, 5):
            decoder.read_var_uint8array()
        return 1
    if ref == 8:  # ContentAny: n lib0 "any" values
        count = _count(decoder)
        for _ in range(count):
            _skip_any(decoder, 0)
        return count
    if ref == 9:  # ContentDoc: guid, options
        decoder.read_var_uint8array()
        _skip_any(decoder, 0)
        return 1
    raise MalformedMessage(f"unknown content ref {ref}")


def _skip_any(decoder: Decoder, depth: int) -> None:
    if depth > _MAX_ANY_DEPTH:
        raise MalformedMessage("value nested too deeply")
    tag = decoder.read_uint8()
    if tag == 125:
        decoder.read_var_int()
    elif tag == 124:
        decoder.read_bytes(4)
    elif tag in (123, 122):
        decoder.read_bytes(8)
    elif tag in (119, 116):
        decoder.read_var_uint8array()
    elif tag == 118:
        for _ in range(_count(decoder)):
            decoder.read_var_uint8array()
            _skip_any(decoder, depth + 1)
    elif tag == 117:
        for _ in range(_count(decoder)):
            _skip_any(decoder, depth + 1)
    # every other tag (undefined, null, booleans) has no body


__all__ = ["update_extent"]
