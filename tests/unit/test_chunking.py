"""Chunk framing of the y-webrtc fork (protocols.md §4.6): byte vectors both directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edrys_relay.protocol.chunking import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MAX_PACKET_SIZE,
    ChunkEncoder,
    ChunkHeader,
    Reassembler,
    decode_packet,
    detect_framing,
    split_message,
)
from edrys_relay.protocol.errors import MalformedMessage, MessageTooBig, PolicyViolation


def i64(n: int) -> str:
    return n.to_bytes(8, "big", signed=True).hex()


def header_hex(tx_ord: int, index: int, length: int, total: int, size: int) -> str:
    return i64(tx_ord) + i64(index) + i64(length) + i64(total) + i64(size)


# The empty-document sync step 1 (§1) sent as the first message on a fresh connection.
STEP1 = bytes.fromhex("00000100")
VEC_SINGLE = bytes.fromhex(
    "0000000000000000"  # txOrd 0
    "0000000000000000"  # index 0
    "0000000000000001"  # length 1
    "0000000000000004"  # totalSize 4
    "0000000000000004"  # chunkSize 4
    "00000100"
)
# 15 873 bytes -> one full chunk of 15 872 (0x3e00) plus one byte, as txOrd 7.
BIG = bytes(i % 251 for i in range(CHUNK_SIZE + 1))
VEC_MULTI_0 = (
    bytes.fromhex(
        "0000000000000007000000000000000000000000000000020000000000003e010000000000003e00"
    )
    + BIG[:CHUNK_SIZE]
)
VEC_MULTI_1 = (
    bytes.fromhex(
        "0000000000000007000000000000000100000000000000020000000000003e010000000000000001"
    )
    + BIG[-1:]
)


def test_constants() -> None:
    assert CHUNK_SIZE == 15872 and HEADER_SIZE == 40 and MAX_PACKET_SIZE == 15912
    assert i64(CHUNK_SIZE) == "0000000000003e00"  # §4.6 example


def test_encode_single_vector() -> None:
    enc = ChunkEncoder()
    assert enc.encode(STEP1) == [VEC_SINGLE]
    assert enc.next_tx_ord == 1


def test_encode_multi_vector() -> None:
    assert split_message(BIG, 7) == [VEC_MULTI_0, VEC_MULTI_1]


def test_encoder_counts_messages_and_skips_empty() -> None:
    enc = ChunkEncoder()
    assert enc.encode(b"") == []  # nothing is sent, but the counter moves like the fork's
    packets = enc.encode(b"ab") + enc.encode(b"cd")
    assert [decode_packet(p)[0].tx_ord for p in packets] == [1, 2]


def test_exact_multiple_of_chunk_size() -> None:
    packets = split_message(bytes(2 * CHUNK_SIZE), 0)
    assert len(packets) == 2
    assert all(len(p) == MAX_PACKET_SIZE for p in packets)
    assert decode_packet(packets[1])[0] == ChunkHeader(0, 1, 2, 2 * CHUNK_SIZE, CHUNK_SIZE)


def test_decode_single_vector() -> None:
    header, chunk = decode_packet(VEC_SINGLE)
    assert header == ChunkHeader(0, 0, 1, 4, 4)
    assert chunk == STEP1
    assert Reassembler().feed(VEC_SINGLE) == STEP1


def test_decode_multi_in_order() -> None:
    r = Reassembler()
    assert r.feed(VEC_MULTI_0) is None
    assert r.pending_messages == 1 and r.pending_bytes == CHUNK_SIZE
    assert r.feed(VEC_MULTI_1) == BIG
    assert r.pending_messages == 0 and r.pending_bytes == 0


def test_decode_multi_out_of_order() -> None:
    r = Reassembler()
    assert r.feed(VEC_MULTI_1) is None
    assert r.feed(VEC_MULTI_0) == BIG


def test_interleaved_messages() -> None:
    msg_a = bytes([1]) * (3 * CHUNK_SIZE - 5)
    msg_b = bytes([2]) * (CHUNK_SIZE + 3)
    a = split_message(msg_a, 10)
    b = split_message(msg_b, 11)
    r = Reassembler()
    out = [r.feed(p) for p in (a[2], b[1], a[0], VEC_SINGLE, b[0], a[1])]
    assert out == [None, None, None, STEP1, msg_b, msg_a]


def test_duplicate_chunks_ignored() -> None:
    r = Reassembler()
    assert r.feed(VEC_MULTI_0) is None
    assert r.feed(VEC_MULTI_0) is None  # duplicate while pending: counted once
    assert r.pending_bytes == CHUNK_SIZE
    assert r.feed(VEC_MULTI_1) == BIG
    assert r.feed(VEC_MULTI_1) is None  # late duplicate of a delivered message
    assert r.feed(VEC_MULTI_0) is None
    assert r.pending_messages == 0
    assert r.feed(VEC_SINGLE) == STEP1
    assert r.feed(VEC_SINGLE) is None  # same txOrd again


def test_duplicate_with_other_content_is_error() -> None:
    r = Reassembler()
    r.feed(VEC_MULTI_0)
    changed = bytearray(VEC_MULTI_0)
    changed[-1] ^= 0xFF
    with pytest.raises(MalformedMessage):
        r.feed(bytes(changed))


@pytest.mark.parametrize(
    ("field", "value"),
    [("length", 3), ("total_size", CHUNK_SIZE + 2)],
)
def test_inconsistent_headers_between_chunks(field: str, value: int) -> None:
    r = Reassembler()
    r.feed(VEC_MULTI_0)
    fields = {"tx_ord": 7, "index": 1, "length": 2, "total_size": CHUNK_SIZE + 1, "chunk_size": 1}
    fields[field] = value
    packet = ChunkHeader(**fields).pack() + b"\x00"
    with pytest.raises(MalformedMessage):
        r.feed(packet)


def test_chunks_exceeding_total_size() -> None:
    r = Reassembler()
    # announced 20 000 bytes in 2 chunks, but both chunks are full-size
    first = ChunkHeader(3, 0, 2, 20000, CHUNK_SIZE).pack() + bytes(CHUNK_SIZE)
    second = ChunkHeader(3, 1, 2, 20000, CHUNK_SIZE).pack() + bytes(CHUNK_SIZE)
    assert r.feed(first) is None
    with pytest.raises(MalformedMessage):
        r.feed(second)


def test_chunks_short_of_total_size() -> None:
    r = Reassembler()
    first = ChunkHeader(3, 0, 2, 20000, 100).pack() + bytes(100)
    second = ChunkHeader(3, 1, 2, 20000, 100).pack() + bytes(100)
    assert r.feed(first) is None
    with pytest.raises(MalformedMessage):
        r.feed(second)


@pytest.mark.parametrize(
    "packet_hex",
    [
        "",
        "00" * 39,  # shorter than the header
        header_hex(0, 0, 1, 4, 4) + "000001",  # chunkSize 4 but 3 bytes present
        header_hex(0, 0, 1, 4, 4) + "0000010000",  # 5 bytes present
        header_hex(-1, 0, 1, 1, 1) + "00",  # negative txOrd
        header_hex(2**53, 0, 1, 1, 1) + "00",  # txOrd beyond 2^53-1
        header_hex(0, -1, 2, 2, 1) + "00",  # negative index
        header_hex(0, 2, 2, 2, 1) + "00",  # index >= length
        header_hex(0, 0, 0, 1, 1) + "00",  # zero chunks
        header_hex(0, 0, 1, 0, 0),  # empty message (never sent)
        header_hex(0, 0, 2, 1, 1) + "00",  # chunk is the whole message but length 2
        header_hex(0, 0, 1, 2, 1) + "00",  # single chunk smaller than the message
        header_hex(0, 0, 5, 4, 1) + "00",  # more chunks than bytes
        header_hex(0, 0, 2, 1, 2) + "0000",  # chunk larger than the message
        header_hex(0, 0, 2, 2 * CHUNK_SIZE + 1, 1) + "00",  # 2 chunks cannot carry it
    ],
)
def test_malformed_packets(packet_hex: str) -> None:
    with pytest.raises(MalformedMessage):
        Reassembler().feed(bytes.fromhex(packet_hex))


def test_chunk_larger_than_limit() -> None:
    packet = ChunkHeader(0, 0, 1, CHUNK_SIZE + 1, CHUNK_SIZE + 1).pack() + bytes(CHUNK_SIZE + 1)
    with pytest.raises(MessageTooBig):
        Reassembler().feed(packet)
    assert Reassembler(max_chunk_size=CHUNK_SIZE + 1).feed(packet) == bytes(CHUNK_SIZE + 1)


def test_max_message_size() -> None:
    r = Reassembler(max_message_size=CHUNK_SIZE)
    with pytest.raises(MessageTooBig):
        r.feed(VEC_MULTI_0)
    header = ChunkHeader(0, 0, 2**40, 2**50, 1)  # a huge announcement is refused at once
    with pytest.raises(MessageTooBig):
        Reassembler().feed(header.pack() + b"\x00")


def test_max_pending_messages() -> None:
    r = Reassembler(max_pending_messages=2)
    r.feed(split_message(bytes(CHUNK_SIZE + 1), 0)[0])
    r.feed(split_message(bytes(CHUNK_SIZE + 1), 1)[0])
    assert r.feed(VEC_SINGLE) is not None  # single-chunk messages need no pending slot
    with pytest.raises(PolicyViolation):
        r.feed(split_message(bytes(CHUNK_SIZE + 1), 2)[0])


def test_max_pending_bytes() -> None:
    r = Reassembler(max_pending_bytes=CHUNK_SIZE + 10)
    r.feed(split_message(bytes(3 * CHUNK_SIZE), 0)[0])
    with pytest.raises(PolicyViolation):
        r.feed(split_message(bytes(3 * CHUNK_SIZE), 0)[1])


def test_completed_memory_is_bounded() -> None:
    r = Reassembler(completed_memory=2)
    packets = [split_message(b"x", n)[0] for n in range(3)]
    for p in packets:
        assert r.feed(p) == b"x"
    assert r.feed(packets[0]) == b"x"  # forgotten: delivered again
    assert r.feed(packets[2]) is None


@given(
    st.lists(st.binary(min_size=1, max_size=3 * 64 + 7), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_round_trip_any_order(messages: list[bytes], rnd) -> None:  # type: ignore[no-untyped-def]
    enc = ChunkEncoder(chunk_size=64)
    packets = [p for m in messages for p in enc.encode(m)]
    rnd.shuffle(packets)
    r = Reassembler(max_chunk_size=64, max_pending_messages=len(messages))
    out = [m for p in packets if (m := r.feed(p)) is not None]
    assert sorted(out) == sorted(messages)
    assert r.pending_messages == 0


@given(st.lists(st.binary(max_size=120), max_size=20))
def test_garbage_only_raises_protocol_errors(packets: list[bytes]) -> None:
    r = Reassembler(max_chunk_size=64, max_message_size=256, max_pending_messages=4)
    for packet in packets:
        try:
            r.feed(packet)
        except (MalformedMessage, MessageTooBig, PolicyViolation):
            return


@given(st.data())
def test_mutated_headers_never_crash(data: st.DataObject) -> None:
    message = data.draw(st.binary(min_size=1, max_size=300))
    packets = split_message(message, data.draw(st.integers(0, 5)), chunk_size=64)
    r = Reassembler(max_chunk_size=64, max_message_size=1024)
    for packet in packets:
        mutated = bytearray(packet)
        if data.draw(st.booleans()):
            pos = data.draw(st.integers(0, HEADER_SIZE - 1))
            mutated[pos] = data.draw(st.integers(0, 255))
        try:
            out = r.feed(bytes(mutated))
        except (MalformedMessage, MessageTooBig, PolicyViolation):
            return
        if out is not None:
            assert len(out) <= 1024


@pytest.mark.parametrize(
    ("first", "framing"),
    [
        (VEC_SINGLE, "edrys"),  # the fork's step 1 of an empty document
        (VEC_MULTI_0, "edrys"),  # the first chunk of message 7
        (VEC_MULTI_1, "plain"),  # a second chunk cannot come first
        (bytes.fromhex(header_hex(1, 0, 1, 4, 4)) + STEP1, "edrys"),  # after an unsent empty one
        (STEP1, "plain"),  # upstream y-webrtc's step 1 of an empty document
        (bytes.fromhex("00000b01d2090a") + bytes(6), "plain"),  # step 1, one client
        # a step 1 padded past 40 bytes: 00 00 then the state vector's length, never 8 zeros
        (bytes.fromhex("00002813") + bytes(39), "plain"),
        (bytes.fromhex("010200"), "plain"),  # awareness first
        (bytes(HEADER_SIZE), "plain"),  # a zero header describes no chunk
    ],
)
def test_detect_framing_from_the_first_message(first: bytes, framing: str) -> None:
    assert detect_framing(first) == framing
