"""Byte-vector and hostile-input tests for the Yjs v1 update codec.

Expected bytes were produced by yjs 13.6.27 (``Y.mergeUpdates`` / ``Y.diffUpdate``) through
``tests/interop/js/yupdate_oracle.mjs``; the interop suite re-checks the codec against node on
random traces.
"""

from __future__ import annotations

import contextlib
import random
import time

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edrys_relay.protocol.errors import MalformedMessage
from edrys_relay.protocol.lib0 import encode_var_uint as vu
from edrys_relay.protocol.v8sort import v8_sort
from edrys_relay.protocol.yupdate import (
    decode_state_vector,
    diff_update,
    encode_state_vector,
    merge_updates,
    parse_update,
    state_vector_from_update,
    update_extent,
)
from tests.unit.yupdate_reference import (
    literal_diff,
    literal_merge,
    literal_state_vector,
    random_state_vector,
    random_update,
)

H = bytes.fromhex
AB = H("010109000401017402616200")  # client 9, clock 0: "ab" in root text "t"
A_EMOJI_B = H("01010900040101740661f09f98806200")  # client 9, clock 0: "a😀b"
ANY3 = H("010109000801016d037d017d027d0300")  # client 9: ContentAny [1, 2, 3] in root map "m"

# (inputs, yjs output) for Y.mergeUpdates
MERGE_VECTORS = [
    pytest.param([], "0000", id="no-updates"),
    pytest.param(["0000", "0000"], "0000", id="two-empty"),
    # the second update's Item is cut inside the surrogate pair: U+FFFD + "b", origin (9, 1)
    pytest.param([AB.hex(), A_EMOJI_B.hex()], "010209000401017402616284090104efbfbd6200",
                 id="split-surrogate-pair"),
    pytest.param(["01010900040101740161" "00", A_EMOJI_B.hex()],
                 "0102090004010174016184090005f09f98806200", id="slice-tail"),
    pytest.param([AB.hex(), "0101090304010174016100"],
                 "01030900040101740261620a0104010174016100", id="gap-becomes-skip"),
    pytest.param(["0101090000020109010101", "0101090200020109010200"],
                 "0101090000040109010101", id="adjacent-gcs-join-and-delete-sets-merge"),
    pytest.param(["010109000801016d017d0100", ANY3.hex()],
                 "010209000801016d017d01880900027d027d0300", id="any-sliced-by-element"),
    pytest.param(["01010901840980000162" "00", "0000"], "01010901840900016200",
                 id="overlong-origin-rewritten"),
    # yjs ignores bit 0x20 when an origin is present and writes it cleared
    pytest.param(["01010901a40900016200", "0000"], "01010901840900016200",
                 id="parent-sub-bit-with-origin-cleared"),
    # a parent-info value other than 1 means "parent ID"; yjs writes it as 0
    pytest.param(["0101090004020500016200", "0000"], "0101090004000500016200",
                 id="parent-info-2-written-as-0"),
]  # fmt: skip


@pytest.mark.parametrize(("inputs", "expected"), MERGE_VECTORS)
def test_merge_matches_yjs_vectors(inputs: list[str], expected: str) -> None:
    assert merge_updates([H(u) for u in inputs]).hex() == expected


@pytest.mark.parametrize(
    ("update", "sv", "expected"),
    [
        (A_EMOJI_B, "00", A_EMOJI_B.hex()),
        (A_EMOJI_B, "010901", "0101090184090005f09f98806200"),
        (A_EMOJI_B, "010902", "0101090284090104efbfbd6200"),  # cut inside the emoji
        (A_EMOJI_B, "010904", "0000"),
        (A_EMOJI_B, "010907", "0000"),
        (A_EMOJI_B, "010501", A_EMOJI_B.hex()),  # other clients do not matter
        (ANY3, "010902", "01010902880901017d0300"),
    ],
)
def test_diff_matches_yjs_vectors(update: bytes, sv: str, expected: str) -> None:
    assert diff_update(update, H(sv)).hex() == expected
    assert diff_update(parse_update(update), H(sv)).hex() == expected


def test_single_update_and_empty_sv_are_returned_as_is() -> None:
    assert merge_updates([A_EMOJI_B]) is A_EMOJI_B
    parsed = parse_update(A_EMOJI_B)
    assert diff_update(parsed, b"\x00") is parsed.data


def test_trailing_bytes_are_ignored_like_yjs_but_not_served() -> None:
    assert diff_update(A_EMOJI_B + b"\xff\xff", b"\x00") == A_EMOJI_B


def test_state_vectors() -> None:
    assert state_vector_from_update(A_EMOJI_B) == H("010904")
    assert state_vector_from_update(b"\x00\x00") == b"\x00"
    # a client that does not start at clock 0 is left out
    assert state_vector_from_update(H("0101090304010174016100")) == b"\x00"
    assert decode_state_vector(H("0209010905")) == {9: 5}  # later duplicate wins
    assert encode_state_vector({9: 4, 300: 1}) == H("020904ac0201")


def test_json_key_order_is_kept() -> None:
    """The reason this codec exists (protocols.md §2.9)."""
    body = b"\x76\x03" + b"".join(vu(1) + k.encode() + b"\x7d\x01" for k in "zam")
    u1 = H("01010900080101") + b"m" + b"\x01" + body + b"\x00"
    merged = merge_updates([u1, AB])
    assert body in merged
    assert body in diff_update(merged, b"\x00")


# --- literal ports vs optimised code on structurally odd updates ---------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_fast_paths_equal_literal_ports(seed: int) -> None:
    rng = random.Random(seed)
    updates = [random_update(rng) for _ in range(rng.randrange(0, 6))]
    assert merge_updates(updates) == literal_merge(updates)
    for update in updates:
        assert state_vector_from_update(update) == literal_state_vector(update)
        sv = random_state_vector(rng)
        assert diff_update(update, sv) == literal_diff(update, sv)
        parsed = parse_update(update)
        assert diff_update(parsed, sv) == literal_diff(update, sv)  # cached index path


def test_merge_is_exact_when_a_gc_and_an_item_share_an_id() -> None:
    """yjs' comparator answers -1 both ways here; the V8-sort replica must be used."""
    gc = H("010109000001") + b"\x00"  # GC (9, 0) length 1
    item = H("01010900040101740161") + b"\x00"  # Item (9, 0) "a"
    for order in ([gc, item], [item, gc], [gc, item, gc], [item, gc, item, gc]):
        assert merge_updates(order) == literal_merge(order)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1)), max_size=150))
def test_v8_sort_orders_keys_like_any_sort(pairs: list[tuple[int, int]]) -> None:
    items = [(k, t, i) for i, (k, t) in enumerate(pairs)]

    def cmp(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
        if a[0] == b[0]:
            return 0 if a[1] == b[1] else -1  # inconsistent, as in yjs
        return a[0] - b[0]

    v8_sort(items, cmp)
    assert [k for k, _, _ in items] == sorted(k for k, _ in pairs)
    consistent = [(k, t, i) for i, (k, t) in enumerate(pairs)]
    v8_sort(consistent, lambda a, b: a[0] - b[0])
    assert consistent == sorted(consistent, key=lambda x: x[0])  # stable


# --- hostile input -------------------------------------------------------------------------------


def _all_entry_points(data: bytes) -> None:
    """Every public function either answers or raises MalformedMessage."""
    for call in (
        lambda: parse_update(data),
        lambda: merge_updates([data, b"\x00\x00"]),
        lambda: diff_update(data, b"\x00"),
        lambda: state_vector_from_update(data),
        lambda: diff_update(b"\x00\x00", data),
    ):
        with contextlib.suppress(MalformedMessage):
            call()


def _assert_rejected(data: bytes) -> None:
    start = time.process_time()
    with pytest.raises(MalformedMessage):
        parse_update(data)
    with pytest.raises(MalformedMessage):
        merge_updates([b"\x00\x00", data])
    assert time.process_time() - start < 1.0


HUGE = vu(2**53 - 1)

HOSTILE = {
    "empty": b"",
    "one-byte": b"\x00",
    "truncated-varuint": b"\x80",
    "overlong-varuint-9-bytes": b"\x80" * 8 + b"\x00" + b"\x00",
    "varuint-above-2^53": b"\xff" * 7 + b"\x7f" + b"\x00",
    "1MiB-of-0xff": b"\xff" * (1 << 20),
    "huge-block-count": HUGE + b"\x00",
    "huge-struct-count": b"\x01" + HUGE + b"\x09\x00",
    # the y-crdt#415 class (21 bytes: a length used for a pre-allocation), in Any and in the DS
    "any-object-of-2^53-entries": H("01010900080101") + b"m" + b"\x01\x76" + HUGE + b"\x00",
    "any-array-of-2^53-entries": H("01010900080101") + b"m" + b"\x01\x75" + HUGE + b"\x00",
    "any-count-2^53": H("01010900080101") + b"m" + HUGE + b"\x00",
    "delete-set-2^53-ranges": b"\x00\x01\x09" + HUGE,
    "delete-set-2^53-clients": b"\x00" + HUGE,
    "string-longer-than-data": H("0101090004010174") + vu(1000) + b"ab\x00",
    "binary-2^53-bytes": H("0101090003010174") + HUGE,
    "invalid-utf8": H("010109000401017402c328") + b"\x00",
    "encoded-surrogate": H("010109000401017403eda080") + b"\x00",
    "unknown-content-ref-11": H("010109000b0101740100"),
    "skip-ref-with-flags": H("010109004a0009000100"),
    "unknown-any-tag": H("01010900080101") + b"m\x01\x10\x00",
    "unknown-type-ref": H("0101090007010174") + b"\x07\x00",
    "doc-with-null-options": H("0101090009010174") + b"\x01g\x7e\x00",
    "invalid-json-embed": H("0101090005010174") + b"\x03{x}\x00",
    "nan-in-json": H("0101090002010174") + b"\x01\x03NaN\x00",
    "clock-above-2^53": b"\x01\x01\x09" + vu(2**53 - 2) + b"\x00\x05\x00",
    "deep-any": H("01010900080101") + b"m\x01" + b"\x75\x01" * 100_000 + b"\x7e\x00",
    "deep-json": H("0101090005010174") + vu(200_001) + b"[" * 100_000 + b"1" + b"]" * 100_000,
    "truncated-after-structs": A_EMOJI_B[:-1],
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_rejected_quickly(data: bytes) -> None:
    _assert_rejected(data)


def test_state_vector_input_is_bounded() -> None:
    for sv in (b"", b"\x80", HUGE, b"\x02\x01\x01\x01"):
        with pytest.raises(MalformedMessage):
            diff_update(A_EMOJI_B, sv)


@pytest.mark.parametrize("update", [AB, A_EMOJI_B, ANY3, H("0101090000020109010101")])
def test_every_proper_prefix_is_rejected(update: bytes) -> None:
    for n in range(len(update)):
        _assert_rejected(update[:n])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    _all_entry_points(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.data())
def test_mutated_updates_only_raise_malformed(seed: int, data: st.DataObject) -> None:
    update = bytearray(random_update(random.Random(seed)))
    for _ in range(data.draw(st.integers(1, 4))):
        if not update:
            break
        i = data.draw(st.integers(0, len(update) - 1))
        update[i] = data.draw(st.integers(0, 255))
    _all_entry_points(bytes(update))


def test_update_extent_covers_structs_and_deletions() -> None:
    doc = pycrdt.Doc(client_id=7)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(bytes(event.update)))
    text = doc.get("t", type=pycrdt.Text)
    text += "abc"
    text += "de"
    del text[0:1]
    assert update_extent(updates[0]) == {7: 3}
    # starts at clock 3: an update whose dependency is missing still reports how far it reaches
    assert update_extent(updates[1]) == {7: 5}
    assert update_extent(updates[2]) == {7: 1}  # a delete set alone
    assert update_extent(parse_update(updates[1])) == {7: 5}
    assert update_extent(b"\x00\x00") == {}
