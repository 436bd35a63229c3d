"""The connection layer (server/connection.py) over the wire, with raw frames where it matters.

Fragmented messages are reassembled before they reach a door, control frames between
fragments are answered, frames pipelined with the upgrade request are neither lost nor
reordered while a room loads, keepalive pings that are answered keep a connection open, and
an idle connection stays small in memory (the target of the idle-connection work).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import tracemalloc
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from edrys_relay.protocol import yjs
from edrys_relay.protocol.routing import RoomName
from edrys_relay.server.app import RelayServer
from edrys_relay.server.connection import Connection
from edrys_relay.server.rooms import Room
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.wsframes import BINARY, CLOSE, CONT, PING, PONG, TEXT, client_frame, read_frame
from tests.server.ydata import text_updates

STEP1_EMPTY = yjs.encode_sync_step1(yjs.EMPTY_STATE_VECTOR)
STEP2_EMPTY = yjs.encode_sync_step2(yjs.EMPTY_UPDATE)


def fragments(opcode: int, pieces: list[bytes]) -> list[bytes]:
    """One message as len(pieces) frames: opcode fin=False, CONT..., CONT fin=True."""
    last = len(pieces) - 1
    return [
        client_frame(opcode if i == 0 else CONT, piece, fin=i == last)
        for i, piece in enumerate(pieces)
    ]


def room(relay: RelayServer, name: str) -> Room:
    return relay.rooms.rooms[RoomName(name)]


async def recv_binary(ws: ClientConnection) -> bytes:
    message = await ws.recv()
    assert isinstance(message, bytes), message
    return message


def upgrade_request(path: str, *extra_headers: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *extra_headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """A WebSocket client on a plain socket: the test decides every byte it writes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: bytes
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        """The status line of the handshake response."""

    @classmethod
    async def connect(
        cls,
        server: RelayServer,
        path: str,
        *,
        pipelined: bytes = b"",
        headers: tuple[str, ...] = (),
    ) -> RawClient:
        """Send the upgrade request and ``pipelined`` in one write; read the response head."""
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(upgrade_request(path, *headers) + pipelined)
            head = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer, head.split(b"\r\n", 1)[0])

    async def write(self, *frames: bytes, pause: float = 0.0) -> None:
        """Write ``frames`` one write each, ``pause`` apart (0: all in one write)."""
        if not pause:
            self.writer.write(b"".join(frames))
            return
        for frame in frames:
            self.writer.write(frame)
            await self.writer.drain()
            await asyncio.sleep(pause)

    async def recv_frame(self) -> tuple[int, bytes]:
        """One server frame (server frames are unmasked and never fragmented here)."""
        async with asyncio.timeout(5):
            fin, opcode, payload = await read_frame(self.reader)
            assert fin, "the server fragmented a message"
            return opcode, payload

    async def recv(self) -> str | bytes:
        """The next text or binary message; fails on a close frame."""
        while True:
            opcode, payload = await self.recv_frame()
            if opcode == TEXT:
                return payload.decode()
            if opcode == BINARY:
                return payload
            assert opcode != CLOSE, f"closed: {payload[:2].hex()} {payload[2:]!r}"

    async def recv_binary(self) -> bytes:
        message = await self.recv()
        assert isinstance(message, bytes), message
        return message

    async def close_code(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = await self.recv_frame()
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big")

    async def aclose(self) -> None:
        self.writer.close()
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()


# -- fragmented messages ----------------------------------------------------------------------


async def test_fragmented_binary_step1_is_answered(relay: RelayServer) -> None:
    update = text_updates("before the fragments")[0]
    async with await open_ws(relay, "/frag") as writer:
        await writer.recv()
        await writer.send(yjs.encode_sync_update(update))
        await wait_for(lambda: room(relay, "frag").update_count == 1)
        raw = await RawClient.connect(relay, "/frag")
        try:
            greeting = yjs.decode_message(await raw.recv_binary())
            assert isinstance(greeting, yjs.SyncStep1)
            # BINARY fin=False, CONT, CONT fin=True; each frame in its own TCP write
            await raw.write(*fragments(BINARY, [b"\x00", b"\x00\x01", b"\x00"]), pause=0.02)
            assert await raw.recv() == yjs.encode_sync_update(update)
            assert await raw.recv() == STEP2_EMPTY
        finally:
            await raw.aclose()


async def test_fragmented_update_with_a_ping_between_fragments(relay: RelayServer) -> None:
    """RFC 6455 §5.4: control frames may come between fragments; the message stays whole."""
    update = text_updates("fragmented " * 20)[0]
    message = yjs.encode_sync_update(update)
    third = len(message) // 3
    pieces = [message[:third], message[third : 2 * third], message[2 * third :]]
    async with await open_ws(relay, "/frag-ping") as receiver:
        await receiver.recv()
        raw = await RawClient.connect(relay, "/frag-ping")
        try:
            await raw.recv()
            first, *rest = fragments(BINARY, pieces)
            await raw.write(first, client_frame(PING, b"between"), *rest, pause=0.02)
            assert await raw.recv_frame() == (PONG, b"between")
            # relayed byte for byte: the reassembled message is the frame others get
            assert await recv_until(receiver, lambda m: m == message) == message
            await wait_for(lambda: room(relay, "frag-ping").update_count == 1)
        finally:
            await raw.aclose()


async def test_fragmented_text_on_the_signaling_door(relay: RelayServer) -> None:
    async with await open_ws(relay, "/") as subscriber:
        await subscriber.send('{"type":"subscribe","topics":["t"]}')
        raw = await RawClient.connect(relay, "/")
        try:
            subscribe = b'{"type":"subscribe","topics":["t"]}'
            await raw.write(
                *fragments(TEXT, [subscribe[:5], subscribe[5:20], subscribe[20:]]), pause=0.02
            )
            await raw.write(*fragments(TEXT, [b'{"type":', b'"ping"', b"}"]))
            assert json.loads(await raw.recv()) == {"type": "pong"}
            # the fragmented subscribe took effect: raw receives a publish to "t"
            await subscriber.send('{"type":"publish","topic":"t","data":"to both"}')
            assert json.loads(await raw.recv())["data"] == "to both"
            await recv_until(subscriber, lambda m: json.loads(m)["data"] == "to both")
            # a fragmented publish, split inside multi-byte UTF-8 sequences
            data = "héllo ✓ 🎉"
            publish = json.dumps(
                {"type": "publish", "topic": "t", "data": data}, ensure_ascii=False
            ).encode()
            at = publish.index("é".encode()) + 1
            at2 = publish.index("🎉".encode()) + 2
            pieces = [publish[:at], publish[at:at2], publish[at2:]]
            await raw.write(*fragments(TEXT, pieces), pause=0.02)
            got = json.loads(await recv_until(subscriber, lambda m: "publish" in m))
            assert got["data"] == data and got["clients"] == 2
        finally:
            await raw.aclose()


async def test_invalid_utf8_across_fragments_closes_with_1007(relay: RelayServer) -> None:
    """Each fragment alone could be a valid prefix; the whole message is not UTF-8.

    (An unfragmented invalid text frame is covered in test_limits.py.)
    """
    raw = await RawClient.connect(relay, "/")
    try:
        pieces = [b'{"type":"ping","x":"\xc3', b"(", b'"}']
        await raw.write(*fragments(TEXT, pieces), pause=0.02)
        assert await raw.close_code() == 1007
    finally:
        await raw.aclose()
    async with await open_ws(relay, "/") as healthy:
        await healthy.send('{"type":"ping"}')
        assert await recv_until(healthy, lambda m: True) == '{"type":"pong"}'


# -- frames pipelined with the upgrade request ------------------------------------------------


@pytest.mark.parametrize("preloaded", [False, True], ids=["room loading", "room loaded"])
async def test_frames_pipelined_with_the_upgrade_are_kept_in_order(
    start_relay: StartRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preloaded: bool
) -> None:
    relay = await start_relay(store="sqlite", data_dir=str(tmp_path))
    holds: list[Connection] = []
    hold = Connection.hold

    def spy(self: Connection) -> None:
        holds.append(self)
        hold(self)

    monkeypatch.setattr(Connection, "hold", spy)
    if preloaded:
        async with await open_ws(relay, "/pipelined") as ws:
            assert await ws.recv() == STEP1_EMPTY
        holds.clear()
    else:
        assert "pipelined" not in relay.rooms.rooms
    first, second = text_updates("piped ", "in")
    # update, sync step 1, update: in the same TCP write as the upgrade request
    pipelined = b"".join(
        client_frame(BINARY, message)
        for message in (
            yjs.encode_sync_update(first),
            STEP1_EMPTY,
            yjs.encode_sync_update(second),
        )
    )
    raw = await RawClient.connect(relay, "/pipelined", pipelined=pipelined)
    try:
        assert b" 101 " in raw.status
        assert len(holds) == (0 if preloaded else 1), "the test missed the path it is for"
        assert await raw.recv() == STEP1_EMPTY  # the greeting, from the room as it was
        # the answer to step 1 covers the update before it, and only that one
        assert await raw.recv() == yjs.encode_sync_update(first)
        assert await raw.recv() == STEP2_EMPTY
        await wait_for(lambda: room(relay, "pipelined").update_count == 2)
        # reading resumed after the hold: a later frame is served too
        await raw.write(client_frame(BINARY, STEP1_EMPTY))
        assert [await raw.recv() for _ in range(3)] == [
            yjs.encode_sync_update(first),
            yjs.encode_sync_update(second),
            STEP2_EMPTY,
        ]
        async with await open_ws(relay, "/pipelined") as joiner:
            greeting = yjs.decode_message(await recv_binary(joiner))
            assert isinstance(greeting, yjs.SyncStep1)
            assert greeting.state_vector != yjs.EMPTY_STATE_VECTOR
            await joiner.send(STEP1_EMPTY)
            received = [await joiner.recv() for _ in range(3)]
            assert received == [
                yjs.encode_sync_update(first),
                yjs.encode_sync_update(second),
                STEP2_EMPTY,
            ]
    finally:
        await raw.aclose()


async def test_frames_pipelined_behind_a_refused_upgrade_reach_no_door(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(allowed_origins=("https://class.example",))
    update = text_updates("sneaked in")[0]
    raw = await RawClient.connect(
        relay,
        "/refused",
        pipelined=client_frame(BINARY, yjs.encode_sync_update(update)),
        headers=("Origin: https://evil.example",),
    )
    try:
        assert b" 403 " in raw.status
        async with asyncio.timeout(5):
            await raw.reader.read()  # the server ends the connection
    finally:
        await raw.aclose()
    assert "refused" not in relay.rooms.rooms
    assert relay.counter.total == 0


async def test_update_followed_by_close_in_one_write_is_kept(relay: RelayServer) -> None:
    """RFC 6455 §1.4, §5.5.1: data sent before the close frame is still data."""
    update = yjs.encode_sync_update(text_updates("last words")[0])
    async with await open_ws(relay, "/last-words") as other:
        await other.recv()
        raw = await RawClient.connect(relay, "/last-words")
        try:
            await raw.recv()
            await raw.write(client_frame(BINARY, update), client_frame(CLOSE, b"\x03\xe8"))
            assert await raw.close_code() == 1000
        finally:
            await raw.aclose()
        assert await recv_until(other, lambda m: m == update, timeout=2) == update
    assert room(relay, "last-words").update_count == 1


async def test_pipelined_message_over_the_door_limit_closes_with_1009(
    relay: RelayServer,
) -> None:
    big = json.dumps({"type": "publish", "topic": "t", "data": "x" * 100_000}).encode()
    assert len(big) > relay.settings.max_message_signaling
    async with await open_ws(relay, "/") as subscriber:
        await subscriber.send('{"type":"subscribe","topics":["t"]}')
        await subscriber.send('{"type":"ping"}')
        assert await subscriber.recv() == '{"type":"pong"}'
        raw = await RawClient.connect(
            relay,
            "/",
            pipelined=client_frame(TEXT, b'{"type":"subscribe","topics":["t"]}')
            + client_frame(TEXT, big),
        )
        try:
            async with asyncio.timeout(1):
                assert await raw.close_code() == 1009
        finally:
            await raw.aclose()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await subscriber.recv()


# -- keepalive --------------------------------------------------------------------------------


async def test_a_client_that_answers_pings_survives_many_keepalive_periods(
    start_relay: StartRelay,
) -> None:
    """The one that does not answer is closed: test_bad_input.py (misses a pong)."""
    relay = await start_relay(ping_interval=0.2, close_timeout=0.2)
    pings: list[bytes] = []
    async with await open_ws(relay, "/alive", ping_interval=None) as other:
        await other.recv()
        raw = await RawClient.connect(relay, "/alive")

        async def answer_pings() -> None:
            while True:
                first, second = await raw.reader.readexactly(2)
                assert not second & 0x80 and (second & 0x7F) < 126
                data = await raw.reader.readexactly(second & 0x7F)
                if first & 0x0F == PING:
                    pings.append(data)
                    raw.writer.write(client_frame(PONG, data))

        answering = asyncio.create_task(answer_pings())
        try:
            await asyncio.sleep(1.2)  # six keepalive periods
            assert len(pings) >= 4, pings
            assert not answering.done()
            assert relay.rooms.connection_count == 2 and other.state.name == "OPEN"
            update = yjs.encode_sync_update(text_updates("still here")[0])
            raw.writer.write(client_frame(BINARY, update))
            assert await recv_until(other, lambda m: m == update) == update
        finally:
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)
            await raw.aclose()


# -- memory -----------------------------------------------------------------------------------

IDLE_CLIENTS = r"""
import os, socket, sys
from edrys_relay.protocol import yjs
from edrys_relay.protocol.routing import RoomName
from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update

port, rooms, per_room = map(int, sys.argv[1:4])
REQUEST = (
    "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

def frame(payload):
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + masked

def open_one(path, client_id):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(REQUEST.format(path=path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("closed during the handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        sys.exit(f"refused: {head[:80]!r}")
    state = '{"user":{"name":"student %d","color":"#30bced"}}' % client_id
    update = encode_awareness_update([AwarenessEntry(client_id, 1, state)])
    sock.sendall(frame(yjs.encode_awareness(update)))
    return sock

warm = [open_one("warm-up", 1 + i) for i in range(20)]
for sock in warm:
    sock.close()
print("warm", flush=True)
sys.stdin.readline()
socks = [
    open_one(f"idle-{r}", 1000 + r * per_room + i) for r in range(rooms) for i in range(per_room)
]
print("ready", flush=True)
sys.stdin.readline()
for sock in socks:
    sock.close()
"""

IDLE_ROOMS, IDLE_PER_ROOM = 30, 10
IDLE_BOUND = 10 * 1024
"""Bytes of traced server heap per idle connection (was 18 KiB on websockets' asyncio layer,
5.6 KiB with server/connection.py)."""


def awareness_states(relay: RelayServer) -> int:
    return sum(len(room.awareness) for room in relay.rooms.rooms.values())


async def test_idle_connections_stay_small(relay: RelayServer) -> None:
    n = IDLE_ROOMS * IDLE_PER_ROOM
    # The clients run in another process: only the server's allocations are traced here.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        IDLE_CLIENTS,
        str(relay.port),
        str(IDLE_ROOMS),
        str(IDLE_PER_ROOM),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def line() -> str:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            return (await proc.stdout.readline()).decode().strip()

    started = False
    try:
        # Warm-up: first-connection costs (imports, caches, a room) are not per connection.
        assert await line() == "warm"
        await wait_for(lambda: relay.counter.total == 0 and not relay.connections)
        gc.collect()
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        proc.stdin.write(b"go\n")
        assert await line() == "ready"
        await wait_for(lambda: relay.counter.total == n and awareness_states(relay) == n)
        assert relay.rooms.connection_count == n
        await asyncio.sleep(0.1)  # the last broadcasts are written
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
        if proc.returncode is None:
            proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    per_connection = grown / n
    assert per_connection < IDLE_BOUND, f"{per_connection:.0f} B per idle connection"


def live_connections() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is Connection)


async def test_connections_that_come_and_go_leave_nothing_behind(relay: RelayServer) -> None:
    gc.collect()
    before = live_connections()
    for i in range(60):
        path = ("/churn-a", "/churn-b", "/", "/stream")[i % 4]
        async with await open_ws(relay, path) as ws:
            if path.startswith("/churn"):
                await ws.recv()  # the greeting: the room door was attached
            else:
                await ws.send('{"type":"ping"}')
                await ws.recv()
    await wait_for(lambda: not relay.connections and relay.counter.total == 0)
    assert not relay._admitted
    assert relay.rooms.connection_count == 0 and not relay.topics.subscriptions
    assert relay.streams.connection_count == 0

    def all_freed() -> bool:  # a stream door's writer task ends one loop turn after the close
        gc.collect()
        return live_connections() == before

    await wait_for(all_freed)
