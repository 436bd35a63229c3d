"""A bare Redis connection for the one hot reader: the node's subscription to its rooms' feeds.

redis-py's ``PubSub`` spends about 10 µs of CPU per message, this connection 0.4 µs
(``bench/redis_costs.py``, docs/performance.md "Scale-out on Redis"): it hands each socket
read to the hiredis parser (C) and returns every reply that read completed, so a burst of
messages costs one loop turn and a few list lookups.
It speaks RESP2 (pub/sub messages are plain arrays), opens ``redis://``, ``rediss://`` and
``unix://`` URLs with their password, and bounds every wait. Everything else a node asks of
Redis goes through redis-py (``bus.connect``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

CONNECT_TIMEOUT = 5.0
READ_SIZE = 256 * 1024
MAX_UNPARSED = 64 * 1024 * 1024
"""Bytes of one unfinished reply the parser may hold (a feed message carries one update)."""


class RespError(ConnectionError):
    """The connection is unusable: closed, refused, timed out or answered with an error."""


def encode(*args: bytes) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class RespConnection:
    """Commands written without waiting; replies (and pushed messages) read in bursts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    def send(self, *args: bytes) -> None:
        """Queue a command (the transport writes it as soon as it can)."""
        self._writer.write(encode(*args))

    async def read(self) -> list[Any]:
        """Every reply complete after one socket read (may be none); callers bound the wait.

        Raises:
            RespError: the connection failed, or Redis answered with an error.
        """
        try:
            data = await self._reader.read(READ_SIZE)
        except OSError as exc:
            raise RespError(f"read failed: {exc}") from exc
        if not data:
            raise RespError("Redis closed the connection")
        self._parser.feed(data)
        replies = []
        try:
            while (reply := self._parser.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise RespError(f"Redis: {reply}")
                replies.append(reply)
        except hiredis.ProtocolError as exc:
            raise RespError(f"not RESP: {exc}") from exc
        if self._parser.len() > MAX_UNPARSED:
            raise RespError("reply too large")
        return replies

    async def call(self, *args: bytes) -> Any:
        """Send one command and wait for its reply (only before anything else is pending)."""
        self.send(*args)
        while True:
            replies = await self.read()
            if replies:
                return replies[0]

    def close(self) -> None:
        self._writer.close()


async def open_connection(url: str) -> RespConnection:
    """Connect and authenticate as the URL says (raises :class:`RespError`)."""
    parts = urlsplit(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if parts.scheme == "unix":
                reader, writer = await asyncio.open_unix_connection(parts.path)
            else:
                context = ssl.create_default_context() if parts.scheme == "rediss" else None
                reader, writer = await asyncio.open_connection(
                    parts.hostname or "localhost", parts.port or 6379, ssl=context
                )
    except (OSError, TimeoutError) as exc:
        raise RespError(f"cannot connect: {exc}") from exc
    connection = RespConnection(reader, writer)
    password = parts.password or _query(parts.query, "password")
    if password is not None:
        username = parts.username or _query(parts.query, "username")
        auth = [unquote(username).encode()] if username else []
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connection.call(b"AUTH", *auth, unquote(password).encode())
        except (RespError, TimeoutError) as exc:
            connection.close()
            raise RespError(f"authentication failed: {exc}") from exc
    return connection


def _query(query: str, name: str) -> str | None:
    values = parse_qs(query).get(name)
    return values[0] if values else None


__all__ = ["RespConnection", "RespError", "encode", "open_connection"]
