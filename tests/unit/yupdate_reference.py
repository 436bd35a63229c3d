"""Test helpers for the Yjs update codec.

* ``random_update``: builds structurally odd but decodable v1 updates (repeated and unsorted
  clients, Skips, GCs next to Items with the same IDs, zero-length structs, emoji strings,
  overlong varUints), the cases a real client rarely produces.
* ``literal_merge`` / ``literal_diff`` / ``literal_state_vector``: line-by-line ports of yjs
  ``updates.js`` that re-sort all decoders every step (with the V8 sort replica) and walk every
  struct; slow, but structurally identical to the JS, so the optimised code can be checked
  against them.
"""

from __future__ import annotations

import random

from edrys_relay.protocol.lib0 import encode_var_uint as vu
from edrys_relay.protocol.v8sort import v8_sort
from edrys_relay.protocol.yupdate import (
    _encode_delete_set,
    _group_delete_set,
    _merge_delete_sets,
    _RunWriter,
    decode_state_vector,
    encode_state_vector,
)
from edrys_relay.protocol.yupdate_scan import (
    GC,
    ITEM,
    SKIP,
    StructTable,
    scan_delete_set,
    scan_structs,
)
from edrys_relay.protocol.yupdate_scan import struct_bytes as _struct_bytes

CHARS = ["a", "b", "é", "中", "😀", "👍🏽"]


def _vs(text: str) -> bytes:
    raw = text.encode("utf-8")
    return vu(len(raw)) + raw


def _overlong(value: int) -> bytes:
    """A valid but non-canonical varUint (one extra 0x80 group)."""
    out = bytearray(vu(value))
    out[-1] |= 0x80
    return bytes(out) + b"\x00"


def random_struct(rng: random.Random, client: int, clock: int) -> tuple[bytes, int]:
    """One struct at (client, clock); returns (bytes, length)."""
    r = rng.random()
    if r < 0.12:
        n = rng.randrange(0, 4)
        return b"\x00" + vu(n), n
    if r < 0.2:
        n = rng.randrange(0, 4)
        return b"\x0a" + vu(n), n
    text = "".join(rng.choice(CHARS) for _ in range(rng.randrange(0, 4)))
    kind = rng.random()
    if kind < 0.5:
        ref, content, length = 4, _vs(text), len(text.encode("utf-16-le")) // 2
    elif kind < 0.7:
        n = rng.randrange(0, 4)
        ref, content, length = 1, vu(n), n
    else:
        vals = [b"\x7d" + bytes([rng.randrange(0, 64)]) for _ in range(rng.randrange(0, 4))]
        vals += [b"\x76\x02" + _vs("z") + b"\x78" + _vs("a") + b"\x79"][: rng.randrange(0, 2)]
        ref, content, length = 8, vu(len(vals)) + b"".join(vals), len(vals)
    head = b""
    info = ref
    if rng.random() < 0.6:
        info |= 0x80
        ident = vu(client) + (vu(max(clock - 1, 0)) if rng.random() < 0.9 else _overlong(clock))
        head += ident
    if rng.random() < 0.3:
        info |= 0x40
        head += vu(rng.randrange(1, 4)) + vu(rng.randrange(0, 9))
    if not info & 0xC0:
        if rng.random() < 0.5:
            head += b"\x01" + _vs("t")
        else:
            head += rng.choice([b"\x00", b"\x02"]) + vu(rng.randrange(1, 4)) + vu(0)
        if rng.random() < 0.3:
            info |= 0x20
            head += _vs("k")
    elif rng.random() < 0.1:
        info |= 0x20  # ignored by yjs when an origin is present
    return bytes([info]) + head + content, length


def random_update(rng: random.Random, clients: tuple[int, ...] = (1, 2, 3)) -> bytes:
    out = []
    n_blocks = rng.randrange(0, 4)
    for _ in range(n_blocks):
        client = rng.choice(clients)
        clock = first_clock = rng.choice([0, 0, rng.randrange(0, 12)])
        structs = []
        for _ in range(rng.randrange(0, 5)):
            blob, length = random_struct(rng, client, clock)
            structs.append(blob)
            clock += length
        out.append(vu(len(structs)) + vu(client) + vu(first_clock) + b"".join(structs))
    ds = []
    for client in rng.sample(clients, rng.randrange(0, len(clients) + 1)):
        ranges = [(rng.randrange(0, 20), rng.randrange(0, 5)) for _ in range(rng.randrange(0, 3))]
        ds.append(vu(client) + vu(len(ranges)) + b"".join(vu(c) + vu(n) for c, n in ranges))
    return vu(n_blocks) + b"".join(out) + vu(len(ds)) + b"".join(ds)


def random_state_vector(rng: random.Random, clients: tuple[int, ...] = (1, 2, 3)) -> bytes:
    return encode_state_vector([(c, rng.randrange(0, 15)) for c in clients if rng.random() < 0.7])


# --- literal ports -----------------------------------------------------------------------------


def _table(update: bytes) -> tuple[StructTable, int]:
    table = StructTable(update)
    ds, _ = scan_structs(table, 0, len(update))
    return table, ds


def literal_state_vector(update: bytes) -> bytes:
    """yjs encodeStateVectorFromUpdateV2, struct by struct."""
    t, _ = _table(update)
    n = len(t.kind)
    if n == 0:
        return b"\x00"
    pairs = []
    cur_client = t.client[0]
    stop = t.clock[0] != 0
    cur_clock = 0 if stop else t.clock[0] + t.length[0]
    for i in range(n):
        if t.client[i] != cur_client:
            if cur_clock != 0:
                pairs.append((cur_client, cur_clock))
            cur_client = t.client[i]
            cur_clock = 0
            stop = t.clock[i] != 0
        if t.kind[i] == SKIP:
            stop = True
        if not stop:
            cur_clock = t.clock[i] + t.length[i]
    if cur_clock != 0:
        pairs.append((cur_client, cur_clock))
    return encode_state_vector(pairs)


def literal_diff(update: bytes, sv: bytes) -> bytes:
    """yjs diffUpdateV2, struct by struct."""
    state = decode_state_vector(sv)
    t, ds_start = _table(update)
    entries, _, _ = scan_delete_set(update, ds_start, len(update))
    w = _RunWriter()
    i, n = 0, len(t.kind)
    while i < n:
        client = t.client[i]
        known = state.get(client, 0)
        if t.kind[i] == SKIP:
            i += 1
            continue
        if t.clock[i] + t.length[i] > known:
            off = max(known - t.clock[i], 0)
            w.add(client, t.clock[i] + off, _struct_bytes(t, i, off))
            i += 1
            while i < n and t.client[i] == client:
                w.add(client, t.clock[i], _struct_bytes(t, i))
                i += 1
        else:
            while i < n and t.client[i] == client and t.clock[i] + t.length[i] <= known:
                i += 1
    return w.finish() + _encode_delete_set(_group_delete_set(entries))


def literal_merge(updates: list[bytes]) -> bytes:
    """yjs mergeUpdatesV2 with a full V8 sort of all decoders before every step."""
    if len(updates) == 1:
        return updates[0]
    from edrys_relay.protocol.lib0 import encode_var_uint
    from edrys_relay.protocol.yupdate_scan import encode_item

    data = b"".join(updates)
    t = StructTable(data)
    decs: list[list[int]] = []
    dss = []
    base = 0
    for u in updates:
        end = base + len(u)
        first = len(t.kind)
        ds, _ = scan_structs(t, base, end)
        entries, _, _ = scan_delete_set(data, ds, end)
        decs.append([first, len(t.kind)])
        dss.append(entries)
        base = end
    K, C, CL, L = t.kind, t.client, t.clock, t.length

    def nxt(d: list[int]) -> None:
        d[0] += 1
        while d[0] < d[1] and K[d[0]] == SKIP:
            d[0] += 1

    for d in decs:
        while d[0] < d[1] and K[d[0]] == SKIP:
            d[0] += 1

    def cmp(a: list[int], b: list[int]) -> int:
        i, j = a[0], b[0]
        if C[i] == C[j]:
            diff = CL[i] - CL[j]
            if diff == 0:
                return 0 if K[i] == K[j] else -1
            return diff
        return C[j] - C[i]

    out: list[tuple[int, int, int, int, int, int]] = []
    cw: list[int] | None = None
    while True:
        decs = [d for d in decs if d[0] < d[1]]
        v8_sort(decs, cmp)
        if not decs:
            break
        d = decs[0]
        fc = C[d[0]]
        if cw is not None:
            it = False
            while d[0] < d[1] and CL[d[0]] + L[d[0]] <= cw[2] + cw[3] and C[d[0]] >= cw[1]:
                nxt(d)
                it = True
            if d[0] >= d[1] or C[d[0]] != fc or (it and CL[d[0]] > cw[2] + cw[3]):
                continue
            i = d[0]
            if fc != cw[1]:
                out.append(tuple(cw))  # type: ignore[arg-type]
                cw = [K[i], C[i], CL[i], L[i], i, 0]
                nxt(d)
            elif cw[2] + cw[3] < CL[i]:
                if cw[0] == SKIP:
                    cw[3] = CL[i] + L[i] - cw[2]
                else:
                    out.append(tuple(cw))  # type: ignore[arg-type]
                    cw = [SKIP, fc, cw[2] + cw[3], CL[i] - cw[2] - cw[3], -1, 0]
            else:
                diff = cw[2] + cw[3] - CL[i]
                cs = [K[i], C[i], CL[i], L[i], i, 0]
                if diff > 0:
                    if cw[0] == SKIP:
                        cw[3] -= diff
                    else:
                        cs = [K[i], C[i], CL[i] + diff, L[i] - diff, i, diff]
                if cw[0] == GC and cs[0] == GC:
                    cw[3] += cs[3]
                else:
                    out.append(tuple(cw))  # type: ignore[arg-type]
                    cw = cs
                    nxt(d)
        else:
            i = d[0]
            cw = [K[i], C[i], CL[i], L[i], i, 0]
            nxt(d)
        while d[0] < d[1] and C[d[0]] == fc and CL[d[0]] == cw[2] + cw[3]:
            out.append(tuple(cw))  # type: ignore[arg-type]
            i = d[0]
            cw = [K[i], C[i], CL[i], L[i], i, 0]
            nxt(d)
    if cw is not None:
        out.append(tuple(cw))  # type: ignore[arg-type]
    w = _RunWriter()
    for k, c, cl, ln, i, off in out:
        if k == ITEM:
            blob = _struct_bytes(t, i) if off == 0 else encode_item(t, i, off)
        else:
            blob = bytes((k,)) + encode_var_uint(ln)
        w.add(c, cl, blob)
    return w.finish() + _merge_delete_sets(dss)
