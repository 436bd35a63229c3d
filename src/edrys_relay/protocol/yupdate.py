"""Merge and diff Yjs v1 updates without re-encoding their content (sans-I/O).

Semantics follow yjs 13.6.27 ``src/utils/updates.js``: :func:`merge_updates` is
``Y.mergeUpdates``, :func:`diff_update` is ``Y.diffUpdate`` and
:func:`state_vector_from_update` is ``Y.encodeStateVectorFromUpdate``. Output is byte-identical
to yjs for every update yjs itself writes. Content bytes are copied, never re-serialised, so JSON
key order survives (protocols.md §2.9); the few places where that makes us differ from yjs on
inputs no Yjs writer produces are listed in ``docs/yupdate.md``.

All functions validate their whole input first and raise
:class:`~edrys_relay.protocol.errors.MalformedMessage` on anything yjs could not decode, in time
linear in the input size.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Sequence

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import Decoder, encode_var_uint
from edrys_relay.protocol.v8sort import v8_sort
from edrys_relay.protocol.yupdate_scan import (
    GC,
    ITEM,
    SKIP,
    DeleteSetEntries,
    StructTable,
    encode_item,
    scan_delete_set,
    scan_structs,
    struct_bytes,
)

EMPTY_UPDATE = b"\x00\x00"
EMPTY_STATE_VECTOR = b"\x00"


class ParsedUpdate:
    """A validated v1 update plus an index of its structs; parse once, diff many times."""

    __slots__ = ("data", "delete_set", "ds_canonical", "ds_end", "ds_start", "table", "verbatim")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.table = StructTable(data)
        self.ds_start, verbatim = scan_structs(self.table, 0, len(data))
        self.delete_set, self.ds_end, self.ds_canonical = scan_delete_set(
            data, self.ds_start, len(data)
        )
        #: True if ``data[:ds_end]`` is exactly what ``Y.diffUpdate(data, emptySV)`` returns.
        self.verbatim = verbatim and self.ds_canonical


def parse_update(update: bytes) -> ParsedUpdate:
    """Validate ``update`` and index its structs (see :class:`ParsedUpdate`)."""
    return ParsedUpdate(bytes(update))


def update_extent(update: bytes | ParsedUpdate) -> dict[int, int]:
    """Per client, the highest clock (exclusive) the update's structs or deletions reach.

    Tells whether an update reaches beyond a document's state vector: Yrs holds an update with
    missing dependencies as "pending" and reports no change, yet its bytes must be kept.
    """
    parsed = _as_parsed(update)
    table = parsed.table
    extent: dict[int, int] = {}
    for client, clock, length in zip(table.client, table.clock, table.length, strict=True):
        end = clock + length
        if end > extent.get(client, 0):
            extent[client] = end
    for client, ranges in parsed.delete_set:
        for clock, length in ranges:
            end = clock + length
            if end > extent.get(client, 0):
                extent[client] = end
    return extent


def _as_parsed(update: bytes | ParsedUpdate) -> ParsedUpdate:
    return update if isinstance(update, ParsedUpdate) else ParsedUpdate(bytes(update))


def decode_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode a v1 state vector; later duplicates win, trailing bytes are ignored (as in yjs)."""
    dec = Decoder(state_vector)
    count = dec.read_var_uint()
    if count > dec.remaining:
        raise MalformedMessage("state-vector count exceeds remaining data")
    state: dict[int, int] = {}
    for _ in range(count):
        client = dec.read_var_uint()
        state[client] = dec.read_var_uint()
    return state


def encode_state_vector(state: dict[int, int] | Sequence[tuple[int, int]]) -> bytes:
    """Encode (client, clock) pairs in the given order."""
    pairs = list(state.items()) if isinstance(state, dict) else list(state)
    out = [encode_var_uint(len(pairs))]
    for client, clock in pairs:
        out.append(encode_var_uint(client))
        out.append(encode_var_uint(clock))
    return b"".join(out)


class _RunWriter:
    """yjs' LazyStructWriter: consecutive structs of one client share a run header."""

    __slots__ = ("client", "clock", "count", "parts", "runs")

    def __init__(self) -> None:
        self.runs: list[bytes] = []
        self.parts: list[bytes] = []
        self.client = -1
        self.clock = 0
        self.count = 0

    def add(self, client: int, clock: int, blob: bytes, count: int = 1) -> None:
        if self.count and client != self.client:
            self.flush()
        if not self.count:
            self.client = client
            self.clock = clock
        self.parts.append(blob)
        self.count += count

    def flush(self) -> None:
        if self.count:
            header = encode_var_uint(self.count) + encode_var_uint(self.client)
            self.runs.append(header + encode_var_uint(self.clock) + b"".join(self.parts))
            self.parts = []
            self.count = 0

    def finish(self) -> bytes:
        self.flush()
        return encode_var_uint(len(self.runs)) + b"".join(self.runs)


def _encode_delete_set(
    clients: dict[int, list[list[int]]] | dict[int, list[tuple[int, int]]],
) -> bytes:
    """yjs ``writeDeleteSet``: clients in descending order, ranges as stored."""
    out = [encode_var_uint(len(clients))]
    for client in sorted(clients, reverse=True):
        ranges = clients[client]
        out.append(encode_var_uint(client))
        out.append(encode_var_uint(len(ranges)))
        for clock, length in ranges:
            out.append(encode_var_uint(clock))
            out.append(encode_var_uint(length))
    return b"".join(out)


def _group_delete_set(entries: DeleteSetEntries) -> dict[int, list[tuple[int, int]]]:
    """yjs ``readDeleteSet``: drop empty entries, append repeated clients in wire order."""
    grouped: dict[int, list[tuple[int, int]]] = {}
    for client, ranges in entries:
        if ranges:
            grouped.setdefault(client, []).extend(ranges)
    return grouped


def _merge_delete_sets(sets: Sequence[DeleteSetEntries]) -> bytes:
    """yjs ``mergeDeleteSets`` + ``sortAndMergeDeleteSet`` + ``writeDeleteSet``."""
    merged: dict[int, list[list[int]]] = {}
    for entries in sets:
        for client, ranges in entries:
            if ranges:
                merged.setdefault(client, []).extend([clock, length] for clock, length in ranges)
    for client, dels in merged.items():
        dels.sort(key=lambda d: d[0])  # stable, like V8's Array.prototype.sort
        j = 1
        for i in range(1, len(dels)):
            left = dels[j - 1]
            right = dels[i]
            if left[0] + left[1] >= right[0]:
                left[1] = max(left[1], right[0] + right[1] - left[0])
            else:
                dels[j] = right
                j += 1
        del dels[j:]
        merged[client] = dels
    return _encode_delete_set(merged)


# --- state vector ------------------------------------------------------------------------------


def state_vector_from_update(update: bytes | ParsedUpdate) -> bytes:
    """``Y.encodeStateVectorFromUpdate``: per client, the clock up to which the update is
    contiguous from 0 (Skips end it); clients that do not start at clock 0 are left out."""
    p = _as_parsed(update)
    t = p.table
    pairs: list[tuple[int, int]] = []
    for seg in range(len(t.seg_client)):
        first = t.seg_first[seg]
        if t.clock[first] != 0:
            continue
        if seg == 0 and t.kind[first] == SKIP:
            # yjs seeds its counter from the very first struct before it checks for a Skip
            clock = t.length[first]
        else:
            stop = t.seg_first_skip[seg]
            if stop < 0:
                stop = t.seg_last[seg]
            clock = t.end_clock(stop - 1) if stop > first else 0
        if clock != 0:
            pairs.append((t.seg_client[seg], clock))
    return encode_state_vector(pairs)


# --- diff --------------------------------------------------------------------------------------


def _diff_start(t: StructTable, seg: int, known: int) -> int:
    """Index of the first struct of segment ``seg`` that ``diffUpdate`` writes, or -1.

    yjs walks the segment: a Skip met at top level is dropped; the first other struct ending
    after ``known`` is written (cut at ``known``) together with everything after it.
    """
    first, last = t.seg_first[seg], t.seg_last[seg]
    kind = t.kind
    if t.seg_mono[seg]:
        ends = _segment_ends(t, seg)
        i = first + bisect_right(ends, known)
        while i < last and kind[i] == SKIP:
            i += 1
        return i if i < last else -1
    i = first
    while i < last:
        if kind[i] == SKIP:
            i += 1
        elif t.clock[i] + t.length[i] > known:
            return i
        else:
            while i < last and t.clock[i] + t.length[i] <= known:
                i += 1
    return -1


def _segment_ends(t: StructTable, seg: int) -> list[int]:
    """End clocks of a segment's structs, cached because a served update is diffed often."""
    ends = t.ends_cache.get(seg)
    if ends is None:
        first, last = t.seg_first[seg], t.seg_last[seg]
        clock, length = t.clock, t.length
        ends = [clock[i] + length[i] for i in range(first, last)]
        t.ends_cache[seg] = ends
    return ends


def diff_update(update: bytes | ParsedUpdate, state_vector: bytes) -> bytes:
    """``Y.diffUpdate``: the part of ``update`` a peer with ``state_vector`` is missing.

    Cheap cases: an update in canonical form and a state vector that knows none of its clients
    are returned as they are; segments the state vector covers are skipped; segments of unknown
    clients are copied as one byte range.
    """
    p = _as_parsed(update)
    state = decode_state_vector(state_vector)
    t = p.table
    seg_client = t.seg_client
    if p.verbatim and not any(state.get(c, 0) for c in seg_client):
        return p.data if p.ds_end == len(p.data) else p.data[: p.ds_end]
    writer = _RunWriter()
    data = t.data
    for seg in range(len(seg_client)):
        client = seg_client[seg]
        known = state.get(client, 0)
        last = t.seg_last[seg]
        if t.seg_mono[seg] and t.end_clock(last - 1) <= known:
            continue
        i = _diff_start(t, seg, known)
        if i < 0:
            continue
        offset = max(known - t.clock[i], 0)
        writer.add(client, t.clock[i] + offset, struct_bytes(t, i, offset))
        if i + 1 < last:
            if t.seg_blocks[seg] == 1 and not t.seg_noncanon[seg]:
                rest = data[t.start[i + 1] : t.stop[last - 1]]
            else:
                rest = b"".join(struct_bytes(t, k) for k in range(i + 1, last))
            writer.add(client, 0, rest, last - i - 1)
    out = writer.finish()
    if p.ds_canonical:
        return out + p.data[p.ds_start : p.ds_end]
    return out + _encode_delete_set(_group_delete_set(p.delete_set))


# --- merge -------------------------------------------------------------------------------------


def merge_updates(updates: Sequence[bytes]) -> bytes:
    """``Y.mergeUpdates``: one update containing everything in ``updates``.

    The struct merge is a faithful port of yjs' algorithm (including how it cuts overlapping
    structs, inserts Skips and joins adjacent GCs); yjs re-sorts all inputs after every step, we
    keep them in a heap whose tie-break reproduces V8's stable sort, so the cost is
    O(structs · log(updates)) instead of O(structs · updates).
    """
    if len(updates) == 1:
        ParsedUpdate(bytes(updates[0]))  # validate; yjs returns a single update untouched
        return updates[0]
    data = b"".join(updates)
    table = StructTable(data)
    ranges: list[tuple[int, int]] = []
    delete_sets: list[DeleteSetEntries] = []
    base = 0
    for update in updates:
        end = base + len(update)
        first = len(table.kind)
        ds_start, _ = scan_structs(table, base, end, segments=False)
        entries, _, _ = scan_delete_set(data, ds_start, end)
        ranges.append((first, len(table.kind)))
        delete_sets.append(entries)
        base = end
    return _merge_structs(table, ranges) + _merge_delete_sets(delete_sets)


def _mixed_ids(t: StructTable, ranges: list[tuple[int, int]]) -> bool:
    """True if some ID starts a GC in one place and an Item in another (see _merge_structs)."""
    kind, client, clock = t.kind, t.client, t.clock
    if GC not in kind:
        return False
    gcs = {(client[i], clock[i]) for a, b in ranges for i in range(a, b) if kind[i] == GC}
    if not gcs:
        return False
    return any(
        kind[i] == ITEM and (client[i], clock[i]) in gcs for a, b in ranges for i in range(a, b)
    )


def _merge_structs(t: StructTable, ranges: list[tuple[int, int]]) -> bytes:
    """Port of the struct loop of yjs ``mergeUpdatesV2`` (see merge_updates).

    yjs stable-sorts its decoders by (client desc, clock asc) before every step; only the first
    one is used and only it moves. With a consistent comparator that order is: key, then "moved
    most recently first", then input order; a heap with a decreasing stamp reproduces it.

    yjs' comparator is inconsistent for a GC and an Item with the same ID (-1 both ways). While
    such a pair is among the decoder heads we therefore keep the decoders in an array and sort it
    with a replica of V8's TimSort (:mod:`v8sort`), exactly as node does.
    """
    kind, client, clock, length = t.kind, t.client, t.clock, t.length
    noncanon, start, stop, data = t.noncanon, t.start, t.stop, t.data
    pos = [a for a, _ in ranges]
    lim = [b for _, b in ranges]
    for d, (a, b) in enumerate(ranges):
        while a < b and kind[a] == SKIP:  # LazyStructReader(filterSkips=true)
            a += 1
        pos[d] = a
    live = [d for d in range(len(ranges)) if pos[d] < lim[d]]
    # Decoders that never moved sit in one pre-sorted list (key, input index); a decoder that
    # moved goes to a heap with a decreasing stamp. Both orders are (key, tie), tie < 0 in the heap.
    static = sorted([(-client[pos[d]], clock[pos[d]], d) for d in live])
    n_static = len(static)
    sp = 0
    moved = bytearray(len(ranges))
    heap: list[tuple[int, int, int, int]] = []
    stamp = 0

    # Mixed GC/Item heads: tracked only when the input contains such an ID at all.
    tracking = _mixed_ids(t, ranges)
    heads: dict[tuple[int, int], list[int]] = {}
    mixed = 0

    def head_change(i: int, delta: int) -> int:
        key = (client[i], clock[i])
        counts = heads.setdefault(key, [0, 0])
        was = counts[0] > 0 and counts[1] > 0
        counts[kind[i] == ITEM] += delta
        now = counts[0] > 0 and counts[1] > 0
        return int(now) - int(was)

    if tracking:
        for d in live:
            mixed += head_change(pos[d], 1)
    arr: list[int] | None = live if mixed else None

    def cmp(d1: int, d2: int) -> int:
        i, j = pos[d1], pos[d2]
        if client[i] == client[j]:
            diff = clock[i] - clock[j]
            if diff == 0:
                return 0 if kind[i] == kind[j] else -1
            return diff
        return client[j] - client[i]

    runs: list[bytes] = []
    parts: list[bytes] = []
    run_client = -1
    run_count = 0
    run_clock = 0

    # currWrite: kind, client, clock, length, struct index (items), content offset (items)
    w_kind = -1
    w_client = w_clock = w_len = w_idx = w_off = 0

    def emit() -> None:
        nonlocal run_client, run_count, run_clock, parts
        if w_kind == ITEM:
            if w_off == 0 and not noncanon[w_idx]:
                blob = data[start[w_idx] : stop[w_idx]]
            else:
                blob = encode_item(t, w_idx, w_off)
        else:
            blob = bytes((w_kind,)) + encode_var_uint(w_len)
        if run_count and w_client != run_client:
            runs.append(
                encode_var_uint(run_count)
                + encode_var_uint(run_client)
                + encode_var_uint(run_clock)
                + b"".join(parts)
            )
            parts = []
            run_count = 0
        if not run_count:
            run_client = w_client
            run_clock = w_clock
        parts.append(blob)
        run_count += 1

    budget = 4 * len(kind) + 16
    while True:
        budget -= 1
        if budget < 0:  # cannot happen (every step or the next one advances); defensive
            raise MalformedMessage("update merge did not converge")
        from_heap = False
        if arr is None:
            while sp < n_static and moved[static[sp][2]]:
                sp += 1
            if sp < n_static:
                top = static[sp]
                d = top[2]
                if heap:
                    h = heap[0]
                    if (h[0], h[1], h[2]) < top:
                        d = h[3]
                        from_heap = True
            elif heap:
                d = heap[0][3]
                from_heap = True
            else:
                break
        else:
            arr = [x for x in arr if pos[x] < lim[x]]
            if not arr:
                break
            v8_sort(arr, cmp)
            d = arr[0]
        old = cur = pos[d]
        end_d = lim[d]
        first_client = client[cur]
        skip_rest = False
        if w_kind >= 0:
            iterated = False
            w_end = w_clock + w_len
            while cur < end_d and clock[cur] + length[cur] <= w_end and client[cur] >= w_client:
                cur += 1
                while cur < end_d and kind[cur] == SKIP:
                    cur += 1
                iterated = True
            if cur >= end_d or client[cur] != first_client or (iterated and clock[cur] > w_end):
                skip_rest = True
            else:
                advance = False
                if first_client != w_client:
                    emit()
                    w_kind, w_client, w_clock, w_len = (
                        kind[cur],
                        first_client,
                        clock[cur],
                        length[cur],
                    )
                    w_idx, w_off = cur, 0
                    advance = True
                elif w_end < clock[cur]:
                    if w_kind == SKIP:
                        w_len = clock[cur] + length[cur] - w_clock
                    else:
                        emit()
                        w_kind, w_clock, w_len = SKIP, w_end, clock[cur] - w_end
                else:
                    diff = w_end - clock[cur]
                    c_kind, c_clock, c_len, c_off = kind[cur], clock[cur], length[cur], 0
                    if diff > 0:
                        if w_kind == SKIP:
                            w_len -= diff
                        else:  # sliceStruct
                            c_clock += diff
                            c_len -= diff
                            c_off = diff
                    if w_kind == GC and c_kind == GC:  # GC.mergeWith; Items never merge here
                        w_len += c_len
                    else:
                        emit()
                        w_kind, w_client, w_clock, w_len = c_kind, first_client, c_clock, c_len
                        w_idx, w_off = cur, c_off
                        advance = True
                if advance:
                    cur += 1
                    while cur < end_d and kind[cur] == SKIP:
                        cur += 1
        else:
            w_kind, w_client, w_clock, w_len = kind[cur], client[cur], clock[cur], length[cur]
            w_idx, w_off = cur, 0
            cur += 1
            while cur < end_d and kind[cur] == SKIP:
                cur += 1
        if not skip_rest:  # write directly following structs of the same decoder
            while cur < end_d and client[cur] == first_client and clock[cur] == w_clock + w_len:
                emit()
                w_kind, w_client, w_clock, w_len = kind[cur], client[cur], clock[cur], length[cur]
                w_idx, w_off = cur, 0
                cur += 1
                while cur < end_d and kind[cur] == SKIP:
                    cur += 1
        if cur == old:
            continue
        pos[d] = cur
        if tracking:
            mixed += head_change(old, -1)
            if cur < end_d:
                mixed += head_change(cur, 1)
        if arr is None:
            stamp -= 1
            if from_heap:
                if cur >= end_d:
                    heapq.heappop(heap)
                else:
                    heapq.heapreplace(heap, (-client[cur], clock[cur], stamp, d))
            else:
                moved[d] = 1
                if cur < end_d:
                    heapq.heappush(heap, (-client[cur], clock[cur], stamp, d))
            if mixed:  # JS's array before its next sort: d first, the others as last sorted
                rest = [(e[0], e[1], e[2], e[2]) for e in static[sp:] if not moved[e[2]]]
                arr = [d] + [e[3] for e in sorted(rest + heap) if e[3] != d]
        elif not mixed:  # consistent again: a stable sort of arr from here on
            heap = [
                (-client[pos[x]], clock[pos[x]], i, x) for i, x in enumerate(arr) if pos[x] < lim[x]
            ]
            heapq.heapify(heap)
            static, n_static, sp = [], 0, 0
            arr = None
    if w_kind >= 0:
        emit()
    if run_count:
        runs.append(
            encode_var_uint(run_count)
            + encode_var_uint(run_client)
            + encode_var_uint(run_clock)
            + b"".join(parts)
        )
    return encode_var_uint(len(runs)) + b"".join(runs)


__all__ = [
    "EMPTY_STATE_VECTOR",
    "EMPTY_UPDATE",
    "ParsedUpdate",
    "decode_state_vector",
    "diff_update",
    "encode_state_vector",
    "merge_updates",
    "parse_update",
    "state_vector_from_update",
    "update_extent",
]
