"""Helpers for ``/stream`` tests: JSON clients, synthetic frames and a raw, stallable viewer."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

from websockets.asyncio.client import ClientConnection

from edrys_relay.protocol.stream import ImageFormat, encode_binary_frame
from edrys_relay.server.app import RelayServer
from tests.conftest import open_ws
from tests.server.wsframes import client_frame, read_frame


def fake_jpeg(size: int, seq: int = 0) -> bytes:
    """``size`` bytes that start like a JPEG file; ``seq`` makes each frame distinct."""
    return b"\xff\xd8\xff\xe0" + seq.to_bytes(4, "big") + os.urandom(max(0, size - 8))


def json_frame(seq: int, image: bytes, **extra: Any) -> str:
    """An Edrys-style JSON frame; ``timestamp`` carries ``seq`` into the binary form too."""
    data = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    return json.dumps({"type": "frame", "seq": seq, "timestamp": seq, **extra, "data": data})


_SEQ_PREFIX = '{"type": "frame", "seq": '


def binary_frame(seq: int, image: bytes) -> bytes:
    """A binary frame whose timestamp field carries ``seq`` (tests only)."""
    return encode_binary_frame(ImageFormat.JPEG, image, float(seq))


def seq_of(message: str | bytes) -> int:
    """The sequence number of a frame sent by :func:`json_frame` or :func:`binary_frame`."""
    if isinstance(message, bytes):
        return int(struct.unpack_from(">d", message, 8)[0])
    if message.startswith(_SEQ_PREFIX):  # fast path for big frames
        return int(message[len(_SEQ_PREFIX) : message.index(",", len(_SEQ_PREFIX))])
    value = json.loads(message)
    return int(value["seq"] if "seq" in value else value["timestamp"])


async def send_json(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def recv_json(
    ws: ClientConnection, timeout: float = 5.0, *, pings: bool = False
) -> dict[str, Any]:
    """The next JSON message; the server's periodic ``ping`` is skipped unless ``pings``."""
    async with asyncio.timeout(timeout):
        while True:
            value: dict[str, Any] = json.loads(await ws.recv())
            if pings or value.get("type") != "ping":
                return value


async def stream_client(
    server: RelayServer, query: str = "", **kwargs: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open ``/stream`` and return the connection and its ``info`` greeting."""
    ws = await open_ws(server, "/stream" + query, max_size=None, **kwargs)
    return ws, await recv_json(ws)


async def join(ws: ClientConnection, room: str, **extra: Any) -> None:
    await send_json(ws, {"type": "join-room", "roomId": room, **extra})


async def register(ws: ClientConnection, room: str) -> dict[str, Any]:
    await send_json(ws, {"type": "register-source", "roomId": room})
    return await recv_json(ws)


async def sync(ws: ClientConnection) -> list[str | bytes]:
    """Round-trip a ``ping`` so everything sent before is handled; return what came meanwhile.

    The server's periodic pings are left out of the result.
    """
    await send_json(ws, {"type": "ping", "timestamp": "sync"})
    others: list[str | bytes] = []
    async with asyncio.timeout(5):
        while True:
            message = await ws.recv()
            if isinstance(message, str) and message.startswith('{"type":"p'):
                reply = json.loads(message)
                if reply["type"] == "pong" and reply.get("clientTimestamp") == "sync":
                    return others
                if reply["type"] == "ping":
                    continue
            others.append(message)


class RawViewer:
    """A viewer on a plain socket with a tiny receive buffer that reads only when asked.

    While it does not read, the server's writes back up as they would for a stalled student.
    It never answers WebSocket pings.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: RelayServer, path: str = "/stream") -> RawViewer:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        # limit: the stream reader stops pulling from the socket beyond ~2 KiB unread.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        """Write one masked text frame (client frames must be masked, RFC 6455 §5.3)."""
        self.send_frame(0x1, text.encode())

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Write one masked, unfragmented frame with any payload, valid or not."""
        self.writer.write(client_frame(opcode, payload))

    async def recv(self) -> tuple[int, bytes]:
        """Read one unfragmented frame: (opcode, payload)."""
        _fin, opcode, payload = await read_frame(self.reader)
        return opcode, payload

    async def recv_message(self) -> str | bytes:
        """The next text or binary message, skipping pings."""
        while True:
            opcode, payload = await self.recv()
            if opcode == 1:
                return payload.decode()
            if opcode == 2:
                return payload
            if opcode == 8:
                raise ConnectionError("closed by the server")

    def close(self) -> None:
        self.writer.transport.abort()
