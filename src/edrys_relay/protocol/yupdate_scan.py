"""Bounded scanner and re-encoder for Yjs v1 update structs (yjs 13.6.27, sans-I/O).

A v1 update is a struct section followed by a delete set (protocols.md §1)::

    varUint nBlocks, nBlocks × (varUint nStructs, varUint client, varUint clock, nStructs × struct)
    varUint nClients, nClients × (varUint client, varUint n, n × (varUint clock, varUint len))

A struct starts with an info byte (yjs ``structs/Item.js``): ``10`` is a Skip and ``info & 31 == 0``
a GC, both followed by a varUint length. Otherwise ``info & 31`` is the content ref (1 Deleted,
2 JSON, 3 Binary, 4 String, 5 Embed, 6 Format, 7 Type, 8 Any, 9 Doc), bit 0x80 announces an
origin ID, 0x40 a right-origin ID; when both are absent a parent follows (varUint 1 + root key, or
another value + parent ID) and, if 0x20 is set, a parentSub key. Then the content.

The scanner never decodes content into values: it records where each struct's bytes are and how
long the struct is in Yjs clock units, validating every length against the bytes that remain, so
hostile input fails with :class:`MalformedMessage` in time linear in its size. Re-encoding keeps
content bytes as they are and only slices them when an Item must be cut at an offset; this keeps
JSON key order (protocols.md §2.9).

"Canonical" below means: re-encoding the struct with yjs' writer yields the very same bytes (no
overlong varUints, info bits and parent-info value as yjs writes them). Only non-canonical structs
are re-encoded; all others are copied verbatim.
"""

from __future__ import annotations

import json

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import MAX_SAFE_INTEGER, Decoder, encode_var_uint

GC = 0
ITEM = 1
SKIP = 10

# lib0 readAny recurses; node 20 fails between 3,000 and 10,000 levels. We stop earlier so that
# nothing we accept can blow a client's stack.
MAX_ANY_DEPTH = 2000

_REF_DELETED, _REF_JSON, _REF_BINARY, _REF_STRING = 1, 2, 3, 4
_REF_EMBED, _REF_FORMAT, _REF_TYPE, _REF_ANY, _REF_DOC = 5, 6, 7, 8, 9
_TYPE_REF_XML_ELEMENT, _TYPE_REF_XML_HOOK, _MAX_TYPE_REF = 3, 5, 6


def _rd_slow(data: bytes, pos: int, end: int, ctx: list[int]) -> tuple[int, int]:
    """Multi-byte varUint; sets ``ctx[0]`` when the encoding is overlong (non-canonical)."""
    if pos + 8 <= end:  # unrolled: no per-byte bounds checks needed
        b = data[pos]
        value = b & 0x7F
        if b >= 0x80:
            b = data[pos + 1]
            value |= (b & 0x7F) << 7
            if b < 0x80:
                if b == 0:
                    ctx[0] = 1
                return value, pos + 2
            b = data[pos + 2]
            value |= (b & 0x7F) << 14
            if b < 0x80:
                if b == 0:
                    ctx[0] = 1
                return value, pos + 3
            b = data[pos + 3]
            value |= (b & 0x7F) << 21
            if b < 0x80:
                if b == 0:
                    ctx[0] = 1
                return value, pos + 4
            b = data[pos + 4]
            value |= (b & 0x7F) << 28
            if b < 0x80:
                if b == 0:
                    ctx[0] = 1
                return value, pos + 5
        # longer (or single-byte) values: fall through to the general loop
    value = 0
    shift = 0
    start = pos
    while pos < end and pos - start < 8:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > MAX_SAFE_INTEGER:
                raise MalformedMessage("varUint exceeds 2^53")
            if byte == 0 and pos - start > 1:
                ctx[0] = 1
            return value, pos
        shift += 7
    if pos >= end:
        raise MalformedMessage("truncated varUint")
    raise MalformedMessage("varUint longer than 8 bytes")


def _rd(data: bytes, pos: int, end: int, ctx: list[int]) -> tuple[int, int]:
    if pos < end:
        byte = data[pos]
        if byte < 0x80:
            return byte, pos + 1
    return _rd_slow(data, pos, end, ctx)


def _utf16_len(raw: bytes) -> int:
    """Length in UTF-16 code units (JS ``string.length``) of strictly valid UTF-8 bytes."""
    if raw.isascii():
        return len(raw)
    try:
        text = raw.decode("utf-8")  # strict, like lib0's fatal TextDecoder
    except UnicodeDecodeError as exc:
        raise MalformedMessage("invalid UTF-8 in string") from exc
    return len(text.encode("utf-16-le")) // 2


def _skip_string(data: bytes, pos: int, end: int, ctx: list[int]) -> int:
    n, pos = _rd(data, pos, end, ctx)
    stop = pos + n
    if stop > end:
        raise MalformedMessage("string length exceeds remaining data")
    raw = data[pos:stop]
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("invalid UTF-8 in string") from exc
    return stop


def _reject_constant(_name: str) -> None:
    raise ValueError("NaN/Infinity are not JSON")


def _ignore_number(_text: str) -> None:
    return None


def _skip_json(data: bytes, pos: int, end: int, ctx: list[int], allow_undefined: bool) -> int:
    """A varString that ``JSON.parse`` accepts (ContentJSON also allows the text ``undefined``)."""
    start = pos
    stop = _skip_string(data, pos, end, ctx)
    _, body = _rd(data, start, end, [0])
    text = data[body:stop].decode("utf-8")
    if allow_undefined and text == "undefined":
        return stop
    try:
        json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_ignore_number,
            parse_float=_ignore_number,
        )
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("invalid JSON in content") from exc
    return stop


def skip_any(
    data: bytes, pos: int, end: int, count: int, ctx: list[int], starts: list[int] | None = None
) -> int:
    """Skip ``count`` lib0 ``writeAny`` values without recursion; return the end position.

    If ``starts`` is given, the start offset of each of the ``count`` top-level values is appended.
    """
    counts = [count]
    is_obj = [False]
    while counts:
        if counts[-1] == 0:
            counts.pop()
            is_obj.pop()
            continue
        counts[-1] -= 1
        if is_obj[-1]:
            pos = _skip_string(data, pos, end, ctx)
        elif starts is not None and len(counts) == 1:
            starts.append(pos)
        if pos >= end:
            raise MalformedMessage("truncated Any value")
        tag = data[pos]
        pos += 1
        if tag == 119:  # string
            pos = _skip_string(data, pos, end, ctx)
        elif tag == 125:  # varInt: at most 8 bytes (lib0 accepts 53 bits)
            first = pos
            while True:
                if pos >= end:
                    raise MalformedMessage("truncated varInt")
                byte = data[pos]
                pos += 1
                if byte < 0x80:
                    break
                if pos - first >= 8:
                    raise MalformedMessage("varInt longer than 8 bytes")
        elif tag >= 126 or tag in (121, 120):  # undefined, null, false, true
            if tag > 127:
                raise MalformedMessage("unknown Any tag")
        elif tag == 124:
            pos += 4
        elif tag in (123, 122):
            pos += 8
        elif tag in (118, 117):  # object, array
            n, pos = _rd(data, pos, end, ctx)
            if n > end - pos:
                raise MalformedMessage("Any container larger than remaining data")
            if len(counts) > MAX_ANY_DEPTH:
                raise MalformedMessage("Any value nested too deeply")
            counts.append(n)
            is_obj.append(tag == 118)
        elif tag == 116:  # Uint8Array
            n, pos = _rd(data, pos, end, ctx)
            pos += n
        else:
            raise MalformedMessage("unknown Any tag")
        if pos > end:
            raise MalformedMessage("Any value exceeds remaining data")
    return pos


def skip_content(data: bytes, pos: int, end: int, ref: int, ctx: list[int]) -> tuple[int, int]:
    """Validate one content of type ``ref``; return (end position, length in clock units)."""
    if ref == _REF_STRING:
        n, pos = _rd(data, pos, end, ctx)
        stop = pos + n
        if stop > end:
            raise MalformedMessage("string length exceeds remaining data")
        return stop, _utf16_len(data[pos:stop])
    if ref == _REF_ANY:
        n, pos = _rd(data, pos, end, ctx)
        if n > end - pos:
            raise MalformedMessage("ContentAny count exceeds remaining data")
        return skip_any(data, pos, end, n, ctx), n
    if ref == _REF_DELETED:
        n, pos = _rd(data, pos, end, ctx)
        return pos, n
    if ref == _REF_TYPE:
        type_ref, pos = _rd(data, pos, end, ctx)
        if type_ref > _MAX_TYPE_REF:
            raise MalformedMessage("unknown type ref")
        if type_ref in (_TYPE_REF_XML_ELEMENT, _TYPE_REF_XML_HOOK):
            pos = _skip_string(data, pos, end, ctx)
        return pos, 1
    if ref == _REF_BINARY:
        n, pos = _rd(data, pos, end, ctx)
        if n > end - pos:
            raise MalformedMessage("binary length exceeds remaining data")
        return pos + n, 1
    if ref == _REF_JSON:
        n, pos = _rd(data, pos, end, ctx)
        if n > end - pos:
            raise MalformedMessage("ContentJSON count exceeds remaining data")
        for _ in range(n):
            pos = _skip_json(data, pos, end, ctx, allow_undefined=True)
        return pos, n
    if ref == _REF_EMBED:
        return _skip_json(data, pos, end, ctx, allow_undefined=False), 1
    if ref == _REF_FORMAT:
        pos = _skip_string(data, pos, end, ctx)
        return _skip_json(data, pos, end, ctx, allow_undefined=False), 1
    if ref == _REF_DOC:
        pos = _skip_string(data, pos, end, ctx)
        if pos < end and data[pos] in (126, 127):
            # yjs reads `opts.shouldLoad` and throws on null/undefined options
            raise MalformedMessage("ContentDoc options must not be null or undefined")
        return skip_any(data, pos, end, 1, ctx), 1
    raise MalformedMessage("unknown content ref")


class StructTable:
    """Flat, append-only index of the structs of one or more updates sharing one buffer.

    Per struct ``i``: ``client[i]``, ``clock[i]``, ``length[i]`` (clock units), ``kind[i]``
    (GC/ITEM/SKIP), byte range ``start[i]:stop[i]`` in ``data`` and ``noncanon[i]`` (1 if a
    verbatim copy would differ from what yjs writes). Segments are maximal runs of consecutive
    structs with the same client, the unit yjs' ``diffUpdate`` works on.
    """

    __slots__ = (
        "client",
        "clock",
        "data",
        "ends_cache",
        "kind",
        "length",
        "noncanon",
        "seg_blocks",
        "seg_client",
        "seg_first",
        "seg_first_skip",
        "seg_last",
        "seg_mono",
        "seg_noncanon",
        "start",
        "stop",
    )

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.client: list[int] = []
        self.clock: list[int] = []
        self.length: list[int] = []
        self.kind: list[int] = []
        self.start: list[int] = []
        self.stop: list[int] = []
        self.noncanon: list[int] = []
        self.seg_client: list[int] = []
        self.seg_first: list[int] = []
        self.seg_last: list[int] = []
        self.seg_blocks: list[int] = []
        self.seg_mono: list[bool] = []
        self.seg_noncanon: list[int] = []
        self.seg_first_skip: list[int] = []
        self.ends_cache: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.kind)

    def end_clock(self, i: int) -> int:
        return self.clock[i] + self.length[i]


def _scan_item(data: bytes, pos: int, end: int, info: int, ctx: list[int]) -> tuple[int, int, int]:
    """Scan the rest of an Item after its info byte; return (pos, length, noncanon)."""
    ref = info & 0x1F
    if ref > 9:
        raise MalformedMessage("unknown content ref")
    noncanon = 0
    if info & 0x80:
        _, pos = _rd(data, pos, end, ctx)
        _, pos = _rd(data, pos, end, ctx)
    if info & 0x40:
        _, pos = _rd(data, pos, end, ctx)
        _, pos = _rd(data, pos, end, ctx)
    if info & 0xC0 == 0:
        parent_info, pos = _rd(data, pos, end, ctx)
        if parent_info == 1:
            pos = _skip_string(data, pos, end, ctx)
        else:
            noncanon = parent_info != 0
            _, pos = _rd(data, pos, end, ctx)
            _, pos = _rd(data, pos, end, ctx)
        if info & 0x20:
            pos = _skip_string(data, pos, end, ctx)
    elif info & 0x20:
        noncanon = 1  # yjs ignores bit 0x20 when an origin is present and writes it cleared
    pos, length = skip_content(data, pos, end, ref, ctx)
    return pos, length, noncanon


def scan_structs(table: StructTable, pos: int, end: int, segments: bool = True) -> tuple[int, bool]:
    """Append the struct section at ``data[pos:end]`` to ``table``.

    With ``segments=False`` (merging) the per-segment index used by diffing is not built.

    Returns the position of the delete set and whether the section is in the exact form yjs'
    ``diffUpdate`` would write it for an empty state vector (so it can be served verbatim).
    """
    data = table.data
    t_client, t_clock, t_length = table.client, table.clock, table.length
    t_kind, t_start, t_stop, t_noncanon = table.kind, table.start, table.stop, table.noncanon
    ctx = [0]
    hctx = [0]  # overlong varUints in block headers (re-encoded anyway, but not verbatim)
    n_blocks, pos = _rd(data, pos, end, hctx)
    if n_blocks > end - pos:
        raise MalformedMessage("block count exceeds remaining data")
    verbatim = True
    prev_client = -1
    for _ in range(n_blocks):
        n_structs, pos = _rd(data, pos, end, hctx)
        client, pos = _rd(data, pos, end, hctx)
        clock, pos = _rd(data, pos, end, hctx)
        if n_structs > end - pos:
            raise MalformedMessage("struct count exceeds remaining data")
        if n_structs == 0:
            verbatim = False  # yjs drops empty blocks when re-encoding
            continue
        first = len(t_kind)
        seg = -1
        if client == prev_client:
            verbatim = False
            if segments:
                seg = len(table.seg_client) - 1
                table.seg_blocks[seg] += 1
        block_noncanon = 0
        first_skip = -1
        for _ in range(n_structs):
            if pos >= end:
                raise MalformedMessage("truncated struct")
            start = pos
            info = data[pos]
            pos += 1
            ctx[0] = 0
            if info == SKIP or info & 0x1F == 0:
                kind = SKIP if info == SKIP else GC
                length, pos = _rd(data, pos, end, ctx)
                noncanon = ctx[0] or (info != kind)
                if kind == SKIP and first_skip < 0:
                    first_skip = len(t_kind)
            else:
                kind = ITEM
                pos, length, noncanon = _scan_item(data, pos, end, info, ctx)
                noncanon = noncanon or ctx[0]
            t_client.append(client)
            t_clock.append(clock)
            t_length.append(length)
            t_kind.append(kind)
            t_start.append(start)
            t_stop.append(pos)
            t_noncanon.append(noncanon)
            block_noncanon += noncanon
            clock += length
            if clock > MAX_SAFE_INTEGER:
                raise MalformedMessage("clock exceeds 2^53")
        last = len(t_kind)
        if t_kind[first] == SKIP or t_clock[first] + t_length[first] == 0:
            verbatim = False  # diffUpdate drops leading Skips and empty structs at clock 0
        if block_noncanon:
            verbatim = False
        prev_client = client
        if not segments:
            continue
        if seg < 0:
            table.seg_client.append(client)
            table.seg_first.append(first)
            table.seg_last.append(last)
            table.seg_blocks.append(1)
            table.seg_mono.append(True)
            table.seg_noncanon.append(block_noncanon)
            table.seg_first_skip.append(first_skip)
        else:
            prev_last = table.seg_last[seg] - 1
            if t_clock[first] + t_length[first] < t_clock[prev_last] + t_length[prev_last]:
                table.seg_mono[seg] = False
            table.seg_last[seg] = last
            table.seg_noncanon[seg] += block_noncanon
            if table.seg_first_skip[seg] < 0:
                table.seg_first_skip[seg] = first_skip
    return pos, verbatim and not hctx[0]


DeleteSetEntries = list[tuple[int, list[tuple[int, int]]]]


def scan_delete_set(data: bytes, pos: int, end: int) -> tuple[DeleteSetEntries, int, bool]:
    """Read a v1 delete set; return (entries in wire order, end position, canonical?).

    Canonical means yjs' read+write round trip reproduces the bytes: clients strictly
    descending, no empty client entry, no overlong varUint.
    """
    ctx = [0]
    n_clients, pos = _rd(data, pos, end, ctx)
    if n_clients > end - pos:
        raise MalformedMessage("delete-set client count exceeds remaining data")
    entries: DeleteSetEntries = []
    canonical = True
    prev_client = -1
    for _ in range(n_clients):
        client, pos = _rd(data, pos, end, ctx)
        n, pos = _rd(data, pos, end, ctx)
        if n > end - pos:
            raise MalformedMessage("delete-set range count exceeds remaining data")
        ranges: list[tuple[int, int]] = []
        for _ in range(n):
            clock, pos = _rd(data, pos, end, ctx)
            length, pos = _rd(data, pos, end, ctx)
            ranges.append((clock, length))
        if n == 0 or (prev_client >= 0 and client >= prev_client):
            canonical = False
        prev_client = client
        entries.append((client, ranges))
    return entries, pos, canonical and not ctx[0]


# --- re-encoding -------------------------------------------------------------------------------


def _string_from(raw: bytes, offset: int) -> bytes:
    """UTF-8 of ``str.slice(offset)`` as yjs writes it.

    ``offset`` counts UTF-16 code units. If it falls inside a surrogate pair, the right half
    starts with a lone low surrogate, which yjs (ContentString.splice, or TextEncoder in
    Item.write) turns into U+FFFD.
    """
    if raw.isascii():
        return raw[offset:]
    text = raw.decode("utf-8")
    units = 0
    for index, char in enumerate(text):
        if units == offset:
            return text[index:].encode("utf-8")
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > offset:
            return ("\ufffd" + text[index + 1 :]).encode("utf-8")
        units += width
    return b""


def _var_string_bytes(dec: Decoder) -> bytes:
    start, stop = dec.read_var_uint8array_bounds()
    return encode_var_uint(stop - start) + bytes(dec.data[start:stop])


def _content_bytes(data: bytes, dec: Decoder, ref: int, offset: int, content_end: int) -> bytes:
    """Re-encode the content at ``dec.pos`` from element ``offset`` on, keeping value bytes."""
    if ref == _REF_STRING:
        start, stop = dec.read_var_uint8array_bounds()
        text = _string_from(bytes(data[start:stop]), offset)
        return encode_var_uint(len(text)) + text
    if ref == _REF_ANY:
        count = dec.read_var_uint()
        starts: list[int] = []
        skip_any(data, dec.pos, content_end, count, [0], starts)
        first = starts[offset] if offset < count else content_end
        return encode_var_uint(count - offset) + bytes(data[first:content_end])
    if ref == _REF_DELETED:
        return encode_var_uint(dec.read_var_uint() - offset)
    if ref == _REF_JSON:
        count = dec.read_var_uint()
        parts = [_var_string_bytes(dec) for _ in range(count)]
        return encode_var_uint(count - offset) + b"".join(parts[offset:])
    if ref in (_REF_BINARY, _REF_EMBED):
        return _var_string_bytes(dec)
    if ref == _REF_FORMAT:
        return _var_string_bytes(dec) + _var_string_bytes(dec)
    if ref == _REF_TYPE:
        type_ref = dec.read_var_uint()
        out = encode_var_uint(type_ref)
        if type_ref in (_TYPE_REF_XML_ELEMENT, _TYPE_REF_XML_HOOK):
            out += _var_string_bytes(dec)
        return out
    # _REF_DOC: guid, then the options Any value verbatim
    guid = _var_string_bytes(dec)
    return guid + bytes(data[dec.pos : content_end])


def encode_item(table: StructTable, i: int, offset: int) -> bytes:
    """Bytes yjs' ``Item.write(encoder, offset)`` produces for struct ``i`` (an Item).

    With ``offset > 0`` the origin becomes ``(client, clock + offset - 1)`` and, as in yjs, the
    parent and parentSub are no longer written (info bit 0x20 is kept if a parentSub existed).
    """
    data = table.data
    dec = Decoder(data, table.start[i], table.stop[i])
    info = dec.read_uint8()
    ref = info & 0x1F
    origin: tuple[int, int] | None = None
    right: tuple[int, int] | None = None
    if info & 0x80:
        origin = (dec.read_var_uint(), dec.read_var_uint())
    if info & 0x40:
        right = (dec.read_var_uint(), dec.read_var_uint())
    parent = b""
    parent_sub: bytes | None = None
    if origin is None and right is None:
        if dec.read_var_uint() == 1:
            parent = b"\x01" + _var_string_bytes(dec)
        else:
            parent = b"\x00" + encode_var_uint(dec.read_var_uint())
            parent += encode_var_uint(dec.read_var_uint())
        if info & 0x20:
            parent_sub = _var_string_bytes(dec)
    if offset > 0:
        origin = (table.client[i], table.clock[i] + offset - 1)
    out = bytearray()
    out.append(
        ref
        | (0x80 if origin is not None else 0)
        | (0x40 if right is not None else 0)
        | (0x20 if parent_sub is not None else 0)
    )
    if origin is not None:
        out += encode_var_uint(origin[0]) + encode_var_uint(origin[1])
    if right is not None:
        out += encode_var_uint(right[0]) + encode_var_uint(right[1])
    if origin is None and right is None:
        out += parent
        if parent_sub is not None:
            out += parent_sub
    out += _content_bytes(data, dec, ref, offset, table.stop[i])
    return bytes(out)


def struct_bytes(table: StructTable, i: int, offset: int = 0) -> bytes:
    """Bytes yjs writes for struct ``i`` cut at ``offset`` clock units."""
    if offset == 0 and not table.noncanon[i]:
        return table.data[table.start[i] : table.stop[i]]
    kind = table.kind[i]
    if kind == ITEM:
        return encode_item(table, i, offset)
    return bytes((kind,)) + encode_var_uint(table.length[i] - offset)


__all__ = [
    "GC",
    "ITEM",
    "MAX_ANY_DEPTH",
    "SKIP",
    "DeleteSetEntries",
    "StructTable",
    "encode_item",
    "scan_delete_set",
    "scan_structs",
    "skip_any",
    "skip_content",
    "struct_bytes",
]
