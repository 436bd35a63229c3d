"""y-websocket transport (protocols.md §2): one WebSocket to ``SERVER/<room>``, reconnecting.

Each connection is a fresh handshake (§2.6): we send our sync step 1 and our awareness, answer
the server's step 1 from the raw log, and count as synced when the server's step 2 arrives. A
dropped connection is reopened with exponential backoff and jitter; the document survives, so
the first step 2 after a reconnect uploads whatever the server lacks (full resync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.client.document import SharedDocument
from edrys_relay.client.options import ClientOptions
from edrys_relay.protocol.awareness import decode_awareness_update
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.yjs import (
    EMPTY_STATE_VECTOR,
    EMPTY_UPDATE,
    AwarenessMessage,
    SyncStep1,
    SyncStep2,
    decode_message,
    encode_awareness,
    encode_sync_step1,
)
from edrys_relay.security.redaction import redact

logger = logging.getLogger(__name__)


def room_url(server_url: str, room: str, params: dict[str, str] | None = None) -> str:
    """``server_url/room?params`` as y-websocket builds it (§2.1: the room is not encoded)."""
    url = server_url.rstrip("/") + "/" + room
    return f"{url}?{urlencode(params)}" if params else url


def backoff_delay(failures: int, options: ClientOptions) -> float:
    """Exponential backoff (y-websocket's 100 ms × 2^n ≤ 2.5 s) with 50-100 % jitter."""
    base = min(options.backoff_initial * 2 ** min(failures, 16), options.backoff_max)
    return float(base * random.uniform(0.5, 1.0))


async def room_is_active(url: str, options: ClientOptions) -> bool:
    """Whether the room at ``url`` has content or members on the y-websocket door.

    Writes nothing but an empty sync step 1. The server opens with its own step 1 (a non-empty
    state vector means content) and, if anyone is there, the awareness states; its step 2 answer
    to ours comes after both (§2.3), so it ends the wait. Unreachable counts as not active.
    """
    try:
        async with (
            asyncio.timeout(options.connect_timeout),
            connect(url, compression=None, max_size=options.max_message) as connection,
        ):
            await connection.send(encode_sync_step1(EMPTY_STATE_VECTOR))
            async for frame in connection:
                if isinstance(frame, str):
                    continue
                message = decode_message(frame)
                if isinstance(message, SyncStep1) and message.state_vector != EMPTY_STATE_VECTOR:
                    return True
                if isinstance(message, AwarenessMessage):
                    return bool(decode_awareness_update(message.update))
                if isinstance(message, SyncStep2):
                    return message.update != EMPTY_UPDATE
    except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ProtocolError):
        return False
    return False


class WebSocketTransport:
    """Keeps a :class:`SharedDocument` in sync through a y-websocket server."""

    name = "websocket"

    def __init__(
        self,
        shared: SharedDocument,
        url: str,
        options: ClientOptions,
        synced: asyncio.Event,
    ) -> None:
        self.shared = shared
        self.url = url
        self.label = redact(url)
        """The URL as logs show it: tokens hidden."""
        self.options = options
        self.synced = synced
        self._queue: asyncio.Queue[bytes] | None = None
        self._connection: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.connections_made = 0
        self.last_error: str | None = None
        """Why the last connection failed or ended; None while connected."""
        shared.add_local_listener(self.broadcast)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ywebsocket {self.label}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def link_count(self) -> int:
        return 1 if self.connected.is_set() else 0

    async def flush(self) -> None:
        """Wait until every queued message was written to the socket."""
        queue = self._queue
        if queue is not None:
            await queue.join()

    def broadcast(self, message: bytes) -> None:
        """Queue ``message`` for the server; a full queue drops the connection (it resyncs)."""
        queue, connection = self._queue, self._connection
        if queue is None or connection is None:
            return  # not connected: the log carries it at the next handshake
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("send queue full, reconnecting to %s", self.label)
            self._queue = None
            connection.transport.abort()  # the reader ends, and we reconnect and resync

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with connect(
                    self.url,
                    compression=None,
                    open_timeout=self.options.connect_timeout,
                    ping_interval=self.options.silence_timeout / 2,
                    ping_timeout=self.options.silence_timeout / 2,
                    max_size=self.options.max_message,
                ) as connection:
                    failures = 0
                    self.last_error = None
                    await self._session(connection)
                self.last_error = f"{self.url}: {_closed(connection)}"
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                self.last_error = f"{self.label}: {exc or type(exc).__name__}"
                logger.info("y-websocket %s", self.last_error)
            except ProtocolError as exc:
                self.last_error = f"{self.label}: protocol error from the server: {exc}"
                logger.warning("y-websocket %s", self.last_error)
            await asyncio.sleep(backoff_delay(failures, self.options))
            failures += 1

    async def _session(self, connection: ClientConnection) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self.options.send_queue)
        self._connection, self._queue = connection, queue
        self.connections_made += 1
        self.connected.set()
        queue.put_nowait(self.shared.sync_step1())
        loop = asyncio.get_running_loop()
        queue.put_nowait(encode_awareness(self.shared.awareness.renew(loop.time())))
        writer = asyncio.create_task(self._write(connection, queue))
        try:
            async for frame in connection:
                if isinstance(frame, str):
                    continue  # y-websocket never sends text; the JS client cannot parse it
                outcome = self.shared.handle(frame, loop.time())
                for reply in outcome.replies:
                    self.broadcast(reply)
                if outcome.synced:
                    self.synced.set()
        finally:
            writer.cancel()
            self._connection = self._queue = None
            self.connected.clear()
            self.synced.clear()
            self.shared.awareness.forget_peers()

    @staticmethod
    async def _write(connection: ClientConnection, queue: asyncio.Queue[bytes]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await connection.send(await queue.get())
                queue.task_done()


def _closed(connection: ClientConnection) -> str:
    code, reason = connection.close_code, connection.close_reason
    return f"the server closed the connection ({code}{' ' + reason if reason else ''})"


__all__ = ["WebSocketTransport", "backoff_delay", "room_is_active", "room_url"]
