"""Room access control over the wire (docs/threats.md A1, A3, A4, A5, A7, A8): issue #6."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode

from edrys_relay.protocol import yjs
from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update
from edrys_relay.security.redaction import room_label
from edrys_relay.security.tokens import Role, TokenSigner
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.test_yjs_door import awareness_of, is_awareness
from tests.server.ydata import text_updates

SECRET = "test-secret-0123456789abcdef"
SIGNER = TokenSigner((SECRET,))


def token(room: str, role: Role = Role.WRITE, ttl: int = 3600, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    return SIGNER.mint(room, role, now=now, ttl_seconds=ttl)


@pytest.fixture
async def guarded(start_relay: StartRelay) -> RelayServer:
    return await start_relay(auth_secrets=(SECRET,))


async def closed_with(ws, code: int, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == code


def _tampered() -> str:
    good = token("a", Role.READ).split(".")
    bad = token("a", Role.WRITE).split(".")
    return ".".join((*good[:3], bad[3]))


REFUSED = {
    "no token": "/a",
    "bad signature": "/a?token=" + token("a")[:-4] + "AAAA",
    "other secret": "/a?token="
    + TokenSigner(("other-secret-0123456789",)).mint("a", Role.WRITE, now=0, ttl_seconds=10**10),
    "expired": "/a?token=" + token("a", ttl=10, now=int(time.time()) - 3600),
    "not yet valid": "/a?token=" + token("a", now=int(time.time()) + 3600),
    "other room": "/a?token=" + token("b"),
    "tampered claims": "/a?token=" + _tampered(),
    "garbage": "/a?token=%00%ff..",
    "path: bad signature": f"/t/{token('a')[:-4]}AAAA/a",
    "path: expired": f"/t/{token('a', ttl=10, now=int(time.time()) - 3600)}/a",
    "path: other room": f"/t/{token('b')}/a",
    "path: empty": "/t//a",
    "path: garbage": "/t/%00%ff../a",
}


@pytest.mark.parametrize("path", REFUSED.values(), ids=REFUSED.keys())
async def test_upgrade_without_a_valid_room_token_gets_401(guarded: RelayServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(guarded, path)
    assert info.value.response.status_code == 401
    assert guarded.rooms.rooms == {}  # refused before any room was touched
    assert guarded.stats.refused_token == 1


@pytest.mark.parametrize(
    "path", ["/", "/signaling", "/stream", "/t/", f"/t/{token('a')[:-4]}AAAA/stream"]
)
async def test_signaling_and_stream_doors_need_a_token_too(guarded: RelayServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(guarded, path)
    assert info.value.response.status_code == 401


async def test_access_is_off_without_a_secret(relay: RelayServer) -> None:
    async with await open_ws(relay, "/open-room") as ws:
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)


async def test_token_in_query_or_subprotocol(guarded: RelayServer) -> None:
    async with await open_ws(guarded, f"/a?userid=u&token={token('a')}") as ws:
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)
    protocols = ["yauth", f"yauth-{token('a')}"]
    async with await open_ws(guarded, "/a", subprotocols=protocols) as ws:
        assert ws.subprotocol == "yauth"  # the marker, so the token is not echoed
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)
    only = f"yauth-{token('a')}"
    async with await open_ws(guarded, "/a", subprotocols=[only]) as ws:
        assert ws.subprotocol == only  # browsers fail a handshake that selects nothing
        await ws.recv()


def yjs_path(room: str, tok: str, where: str) -> str:
    """The path a client asks for with ``tok`` in the query or in the path prefix."""
    return f"/{room}?token={tok}" if where == "query" else f"/t/{tok}/{room}?userid=u"


async def test_token_in_the_path_prefix(
    guarded: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    """What stock Edrys-Lite sends for a server URL ``.../t/<token>`` (protocols.md §2.1)."""
    caplog.set_level(logging.INFO, logger="edrys_relay.server.app")
    async with await open_ws(guarded, f"/t/{token('Lab:1$x')}/Lab:1$x?userid=BB7w%2B_x1") as ws:
        assert isinstance(yjs.decode_message(await ws.recv()), yjs.SyncStep1)
    assert list(guarded.rooms.rooms) == ["Lab:1$x"]  # the room, never the prefix
    opened = f"room={room_label('Lab:1$x')} userid=BB7w+_x1 from"  # logged as its label
    assert any(opened in r.getMessage() for r in caplog.records)
    # a path token and a query token add up (one signaling socket, several rooms)
    async with await open_ws(guarded, f"/t/{token('r1')}/?token={token('r2')}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["r1", "r2", "r3"]}))
        await wait_for(lambda: {"r1", "r2"} <= guarded.topics.topics.keys())
        assert "r3" not in guarded.topics.topics and guarded.topics.refused == 1


async def test_access_off_ignores_path_tokens(relay: RelayServer) -> None:
    """Without a secret the prefix is cut off unchecked: the same room as a plain URL."""
    update = text_updates("same doc")[0]
    async with (
        await open_ws(relay, "/t/not-a-token/shared") as a,
        await open_ws(relay, "/shared") as b,
    ):
        await a.recv()
        await b.recv()
        await a.send(yjs.encode_sync_update(update))
        assert await recv_until(b, lambda m: m == yjs.encode_sync_update(update))
    assert list(relay.rooms.rooms) == ["shared"]


@pytest.mark.parametrize("where", ["query", "path"])
async def test_read_only_updates_are_dropped_awareness_flows(
    guarded: RelayServer, where: str
) -> None:
    first, second = text_updates("teacher ", "pupil")
    reader_url = yjs_path("lesson", token("lesson", Role.READ), where)
    async with (
        await open_ws(guarded, yjs_path("lesson", token("lesson"), where)) as writer,
        await open_ws(guarded, reader_url) as reader,
    ):
        await writer.recv()
        await reader.recv()
        await writer.send(yjs.encode_sync_update(first))
        assert await recv_until(reader, lambda m: m == yjs.encode_sync_update(first))
        await reader.send(yjs.encode_sync_update(second))
        await reader.send(yjs.encode_sync_step2(second))
        state = AwarenessEntry(77, 1, '{"user":"pupil"}')
        await reader.send(yjs.encode_awareness(encode_awareness_update([state])))
        # the writer sees the pupil's awareness, never the pupil's update
        echoed = await recv_until(writer, is_awareness)
        assert awareness_of(echoed) == [state]
        room = guarded.rooms.rooms["lesson"]
        assert room.update_count == 1
        assert guarded.stats.read_only_dropped == 2


@pytest.mark.parametrize("where", ["query", "path"])
async def test_connection_closes_when_its_token_expires(guarded: RelayServer, where: str) -> None:
    async with await open_ws(guarded, yjs_path("a", token("a", ttl=1), where)) as ws:
        await closed_with(ws, 1008, timeout=10)
        assert ws.close_reason == "token expired"
    assert guarded.stats.tokens_expired == 1


async def test_no_token_or_secret_in_any_server_log(
    guarded: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="websockets.server")  # `serve` may have raised it
    secrets = [token("a"), token("b", Role.READ), token("a", ttl=1), token("c"), token("d")]
    async with await open_ws(guarded, f"/a?token={secrets[0]}") as ws:
        await ws.recv()
    async with await open_ws(guarded, "/b", subprotocols=[f"yauth-{secrets[1]}"]):
        pass
    with pytest.raises(InvalidStatus):
        await open_ws(guarded, f"/a?token={secrets[1][:-3]}xyz")
    async with await open_ws(guarded, f"/?token={secrets[2]}") as ws:
        await closed_with(ws, 1008, timeout=10)
    async with await open_ws(guarded, f"/t/{secrets[3]}/c?userid=u") as ws:
        await ws.recv()
    async with await open_ws(guarded, f"/t/{secrets[4]}/"):
        pass
    for refused in (f"/t/{secrets[3]}/d", f"/t/{secrets[3]}/t/x", f"/t/{secrets[3]}/{'x' * 300}"):
        with pytest.raises(InvalidStatus):
            await open_ws(guarded, refused)
    server_lines = [r.getMessage() for r in caplog.records if r.name != "websockets.client"]
    assert any("GET /a" in line for line in server_lines), "websockets debug lines were captured"
    assert any("GET /t/…/c?userid=u" in line for line in server_lines)
    refused_line = f"refused upgrade to /t/…/{room_label('t/x')}"  # the room as its label
    assert any(refused_line in line for line in server_lines)
    for secret in [*secrets, SECRET, secrets[1][:-3]]:
        for piece in secret.split("."):
            if len(piece) > 8:
                assert not any(piece in line for line in server_lines), piece


async def test_signaling_needs_a_token_per_topic(guarded: RelayServer) -> None:
    both = f"{token('room-a')},{token('room-b', Role.READ)}"
    async with (
        await open_ws(guarded, f"/?token={token('room-a')}") as alice,
        await open_ws(guarded, f"/signaling?token={both}") as bob,
    ):
        await alice.send(json.dumps({"type": "subscribe", "topics": ["room-a", "room-c"]}))
        await bob.send(json.dumps({"type": "subscribe", "topics": ["room-a", "room-b"]}))
        await wait_for(lambda: len(guarded.topics.topics.get("room-a", ())) == 2)
        assert "room-c" not in guarded.topics.topics
        assert len(guarded.topics.topics["room-b"]) == 1
        assert guarded.topics.refused == 1
        # publishing to a topic one is not subscribed to is refused
        await alice.send(json.dumps({"type": "publish", "topic": "room-b", "data": "snoop"}))
        await alice.send(json.dumps({"type": "publish", "topic": "room-a", "data": "hello"}))
        reply = json.loads(await bob.recv())
        assert reply == {"type": "publish", "topic": "room-a", "data": "hello"}  # no "clients"
        assert guarded.topics.refused == 2


@pytest.mark.parametrize("path", ["/room", "/", "/signaling"])
async def test_foreign_origin_gets_403_before_the_upgrade(
    start_relay: StartRelay, path: str
) -> None:
    relay = await start_relay(allowed_origins=("https://school.example",))
    for origin in ("https://evil.example", "https://school.example.evil.com", "null"):
        with pytest.raises(InvalidStatus) as info:
            await open_ws(relay, path, origin=origin)
        assert info.value.response.status_code == 403
    async with await open_ws(relay, path, origin="https://school.example"):
        pass
    async with await open_ws(relay, path):  # no Origin: not a browser page
        pass
    assert relay.stats.refused_origin == 3
    assert relay.rooms.rooms.keys() <= {"room"}


async def test_frames_after_expiry_are_dropped_while_closing(guarded: RelayServer) -> None:
    """A client that ignores the close frame cannot keep writing (docs/threats.md A7)."""
    sock = socket.create_connection(("127.0.0.1", guarded.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (
            f"GET /exp?token={token('exp', ttl=1)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    await wait_for(lambda: guarded.stats.tokens_expired == 1, timeout=10)
    update = yjs.encode_sync_update(text_updates("too late")[0])
    for frame in (Frame(Opcode.BINARY, update), Frame(Opcode.CLOSE, Close(1000, "").serialize())):
        writer.write(frame.serialize(mask=True, extensions=[]))
    async with asyncio.timeout(5):
        while await reader.read(4096):  # until the server hangs up
            pass
    writer.close()
    room = guarded.rooms.rooms.get("exp")
    assert room is None or room.update_count == 0
