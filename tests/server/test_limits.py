"""Abuse limits over the wire (docs/threats.md B10, B11, B13, A11, A12, V15): issue #6.

Each case also checks that a healthy pair of clients keeps syncing.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from websockets.exceptions import ConnectionClosed

from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.test_bad_input import HealthyPair
from tests.server.test_yjs_door import awareness_of, is_awareness
from tests.server.ydata import independent_updates


async def closed_with(ws, code: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


def awareness(*entries: tuple[int, int, str]) -> bytes:
    return yjs.encode_awareness(
        encode_awareness_update(
            [AwarenessEntry(cid, clock, state) for cid, clock, state in entries]
        )
    )


async def test_over_the_connection_cap_new_connections_get_1013(start_relay: StartRelay) -> None:
    relay = await start_relay(max_connections=2)
    async with HealthyPair(relay) as healthy:
        async with await open_ws(relay, "/third") as shed:
            await closed_with(shed, 1013)
            assert shed.close_reason == "try again later"
        await healthy.exchange()
        assert relay.stats.shed == 1
    # capacity frees up when connections close: the retry succeeds
    await wait_for(lambda: relay.counter.total == 0)
    async with await open_ws(relay, "/third") as retry:
        assert isinstance(yjs.decode_message(await retry.recv()), yjs.SyncStep1)


async def test_per_address_cap_honours_only_a_trusted_proxy(start_relay: StartRelay) -> None:
    behind_proxy = await start_relay(max_connections_per_address=1, trusted_proxies=("127.0.0.1",))

    def via(address: str) -> dict[str, object]:
        return {"additional_headers": {"X-Forwarded-For": address}}

    async with await open_ws(behind_proxy, "/r", **via("198.51.100.1")) as first:
        await first.recv()
        async with await open_ws(behind_proxy, "/r", **via("198.51.100.1")) as second:
            await closed_with(second, 1013)
        async with await open_ws(behind_proxy, "/r", **via("198.51.100.2")) as other:
            await other.recv()
    direct = await start_relay(max_connections_per_address=1)
    async with await open_ws(direct, "/r", **via("198.51.100.1")) as first:
        await first.recv()
        async with await open_ws(direct, "/r", **via("198.51.100.2")) as spoofed:
            await closed_with(spoofed, 1013)  # the header is ignored: same TCP peer


@pytest.mark.parametrize("path", ["/flood", "/"])
async def test_message_rate_limit_closes_only_the_flooder(
    start_relay: StartRelay, path: str
) -> None:
    relay = await start_relay(message_rate=10, message_burst=20)
    frame = yjs.encode_query_awareness() if path != "/" else json.dumps({"type": "ping"})
    async with HealthyPair(relay) as healthy:
        async with await open_ws(relay, path) as flooder:
            for _ in range(100):  # bounded: the server closes after ~20
                try:
                    await flooder.send(frame)
                except ConnectionClosed:
                    break
            await closed_with(flooder, 1008)
        await healthy.exchange()
    assert relay.stats.rate_limited == 1


async def test_awareness_impersonation_and_client_id_cap(start_relay: StartRelay) -> None:
    relay = await start_relay(max_awareness_client_ids=2)
    async with (
        await open_ws(relay, "/class") as teacher,
        await open_ws(relay, "/class") as pupil,
        await open_ws(relay, "/class") as observer,
    ):
        for ws in (teacher, pupil, observer):
            await ws.recv()
        await teacher.send(awareness((1, 1, '{"name":"teacher"}')))
        await recv_until(observer, is_awareness)
        # the pupil claims the teacher's ID, removes it, then announces three IDs of its own
        await pupil.send(awareness((1, 5, '{"name":"fake teacher"}')))
        await pupil.send(awareness((1, 6, "null")))
        await pupil.send(awareness((2, 1, '{"n":2}'), (3, 1, '{"n":3}'), (4, 1, '{"n":4}')))
        message = await recv_until(observer, is_awareness)
        assert [e.client_id for e in awareness_of(message)] == [2, 3]
        room = relay.rooms.rooms["class"]
        assert room.awareness.get(1) == '{"name":"teacher"}'
        assert sorted(room.awareness.client_ids()) == [1, 2, 3]
        assert relay.stats.awareness_dropped == 3


async def test_awareness_entries_per_update_cap_closes(relay: RelayServer) -> None:
    async with HealthyPair(relay) as healthy:
        async with await open_ws(relay, "/aw") as bad:
            await bad.recv()
            await bad.send(awareness(*[(cid, 1, "{}") for cid in range(10_000)]))
            await closed_with(bad, 1009)
        await healthy.exchange()


async def test_awareness_rate_drops_the_excess(start_relay: StartRelay) -> None:
    relay = await start_relay(awareness_rate=0.001, awareness_burst=3)
    async with await open_ws(relay, "/aw") as chatty:
        await chatty.recv()
        for clock in range(1, 11):
            await chatty.send(awareness((9, clock, f'{{"c":{clock}}}')))
        await wait_for(lambda: relay.stats.awareness_dropped == 7)
        assert relay.rooms.rooms["aw"].awareness.get(9) == '{"c":3}'


async def test_topic_caps(start_relay: StartRelay) -> None:
    relay = await start_relay(max_topics_per_connection=32, max_subscribers_per_topic=2)
    async with (
        await open_ws(relay, "/") as a,
        await open_ws(relay, "/") as b,
        await open_ws(relay, "/") as c,
    ):
        await a.send(json.dumps({"type": "subscribe", "topics": [f"t{i}" for i in range(5_000)]}))
        await wait_for(lambda: relay.topics.refused == 5_000 - 32)
        assert len(relay.topics.topics) == 32
        for ws in (b, c):
            await ws.send(json.dumps({"type": "subscribe", "topics": ["t0"]}))
        await wait_for(lambda: relay.topics.refused == 5_000 - 32 + 1)
        assert len(relay.topics.topics["t0"]) == 2
        await a.send(json.dumps({"type": "unsubscribe", "topics": [f"t{i}" for i in range(32)]}))
        await wait_for(lambda: len(relay.topics.topics) == 1)
    await wait_for(lambda: relay.topics.topics == {})


async def test_full_room_drops_updates_and_tells_the_writer(start_relay: StartRelay) -> None:
    relay = await start_relay(max_document_bytes=50_000)
    updates = independent_updates(5, 20_000)
    async with await open_ws(relay, "/full") as writer, await open_ws(relay, "/full") as other:
        await writer.recv()
        await other.recv()
        for update in updates[:3]:
            await writer.send(yjs.encode_sync_update(update))
            await recv_until(other, lambda m, u=update: m == yjs.encode_sync_update(u))
        room = relay.rooms.rooms["full"]
        assert room.log_bytes >= 50_000
        await writer.send(yjs.encode_sync_update(updates[3]))
        denied = await recv_until(writer, lambda m: m[:1] == b"\x02")
        assert denied == yjs.encode_auth_denied("document size limit reached")
        await writer.send(yjs.encode_query_awareness())
        await recv_until(writer, is_awareness)
        assert room.update_count == 3 and relay.stats.document_limit == 1


async def test_trickled_handshake_is_cut_at_open_timeout(start_relay: StartRelay) -> None:
    relay = await start_relay(open_timeout=0.5)
    sock = socket.create_connection(("127.0.0.1", relay.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # and never finish the headers
    async with HealthyPair(relay) as healthy:
        await healthy.exchange()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # the server hung up
        await healthy.exchange()
    writer.close()


async def test_room_cap_sheds_connections_that_would_open_a_new_room(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(max_rooms=1)
    async with await open_ws(relay, "/one") as first:
        await first.recv()
        async with await open_ws(relay, "/two") as shed:
            await closed_with(shed, 1013)
        async with await open_ws(relay, "/one") as same_room:
            assert isinstance(yjs.decode_message(await same_room.recv()), yjs.SyncStep1)
    assert list(relay.rooms.rooms) == ["one"]


async def test_a_class_behind_one_address_is_admitted(relay: RelayServer) -> None:
    """docs/threats.md A11: 36 clients from one NAT address, default limits."""
    clients = [await open_ws(relay, "/nat-class") for _ in range(36)]
    try:
        for ws in clients:
            assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)
        assert relay.stats.shed == 0
    finally:
        for ws in clients:
            await ws.close()


async def test_invalid_utf8_text_on_signaling_closes_with_1007(relay: RelayServer) -> None:
    """docs/threats.md B7 (the WebSocket layer validates UTF-8 in text frames)."""
    async with HealthyPair(relay) as healthy:
        async with await open_ws(relay, "/") as bad:
            await bad.send(b'{"type":"ping","x":"\xff"}', text=True)
            await closed_with(bad, 1007)
        await healthy.exchange()


HANDSHAKE_ABUSE = {
    "100 KB header line": (b"GET /r HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000, b"431"),
    "200 headers": (
        b"GET /r HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)),
        b"431",
    ),
    "no Sec-WebSocket-Key": (
        b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13",
        b"400",
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), HANDSHAKE_ABUSE.values(), ids=HANDSHAKE_ABUSE)
async def test_handshake_abuse_is_refused(
    relay: RelayServer, request_bytes: bytes, status: bytes
) -> None:
    """docs/threats.md B13: oversized or broken upgrade requests get 4xx, nothing is created."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(request_bytes + b"\r\n\r\n")
    async with asyncio.timeout(5):
        status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == status
    assert relay.rooms.rooms == {}
