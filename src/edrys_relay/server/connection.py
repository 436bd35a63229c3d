"""One WebSocket connection: websockets' sans-I/O protocol driven by asyncio callbacks.

websockets' own asyncio layer keeps, for every connection, a handler task, a keepalive task, a
message queue, a logger and the handshake headers for the connection's lifetime, and wakes the
handler task through that queue for each message (docs/performance.md "Idle connections": 18 KiB
per idle connection). Here websockets still does the protocol work (``ServerProtocol``: request
parsing and validation, framing, masking, size limits, ping/pong and the closing handshake), but
a complete message goes straight from the socket callback to the connection's :class:`Door`, in
the loop turn it arrived. Nothing here is a task: keepalive is one sweep over all connections
(:meth:`Connection.keepalive`), deadlines are timer handles that exist only while they run.

The connection is also the :class:`~edrys_relay.server.peer.Peer` the hubs talk to: a message
is framed once by the shared :class:`~edrys_relay.server.transport.Outbox` and the connection
writes everything queued for it with one ``transport.write`` per loop turn.

The transport's write buffer is the bounded send queue: a receiver whose buffer stays above
``send_buffer_high`` for ``slow_consumer_seconds``, or grows past ``send_buffer_max``, is
dropped; its client reconnects and resyncs, which the CRDT makes safe.

Each connection adds its traffic to its door's :class:`Traffic` with plain integer additions,
once per read, per message received and per write (not per message sent): ``/metrics`` reads
these counters when it is scraped (``server/metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import LoggerLike, Subprotocol

from edrys_relay.config import Settings
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.security.redaction import redacted_target
from edrys_relay.server.transport import Outbox

logger = logging.getLogger(__name__)

_ids = itertools.count(1)

WRITE_HIGH = 32 * 1024
"""Write-buffer level above which ``drain()`` waits (as websockets' default ``write_limit``)."""
WRITE_LOW = WRITE_HIGH // 4

READ_BUFFER_SIZE = 256 * 1024
"""Bytes read per ``recv_into`` (asyncio's own read size)."""

_OPEN = State.OPEN
_CONNECTING = State.CONNECTING
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


SubprotocolSelector = Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]


@dataclass(slots=True)
class Traffic:
    """What the connections of one door did (``/metrics``); bytes are WebSocket bytes, before
    TLS, the upgrade request and response included."""

    door: str
    open: int = 0
    opened: int = 0
    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    slow_dropped: int = 0
    """Receivers dropped for falling behind (send buffer over its limits)."""


UNROUTED = Traffic("-")
"""Where a connection counts until its upgrade is routed to a door (refused ones stay)."""


class Door(Protocol):
    """What serves an open connection: one door per route (Yjs, signaling, stream)."""

    def receive(self, message: str | bytes) -> None:
        """Handle one complete message (str: text frame, bytes: binary frame).

        Raises:
            ProtocolError: the message breaks the door's protocol; only this connection closes.
        """
        ...

    def closed(self) -> None:
        """The connection has ended: release everything it held."""
        ...


class Host(Protocol):
    """The server side of a connection (``RelayServer``)."""

    settings: Settings
    outbox: Outbox
    server_header: str

    @property
    def wire_logger(self) -> LoggerLike:
        """Where websockets' protocol objects log (their debug lines show frames)."""
        ...

    @property
    def select_subprotocol(self) -> SubprotocolSelector:
        """Called by websockets as a method of each connection's ``ServerProtocol``."""
        ...

    max_message_size: int
    """The largest message of any door; each door then sets its own limit."""
    connections: set[Connection]
    """Every connection from accept to ``connection_lost`` (keepalive, shutdown)."""
    read_buffer: memoryview
    """One receive buffer for all of the host's connections (``READ_BUFFER_SIZE``): their
    callbacks never overlap, and the parser copies the bytes before the next read. asyncio
    would allocate a fresh 256 KiB object per read instead."""

    def process_request(self, connection: Connection, request: Request) -> Response | None:
        """An HTTP answer that ends the request here, or None to accept the upgrade."""
        ...

    def opened(self, connection: Connection, request: Request) -> None:
        """The upgrade succeeded: attach a door now or later (:meth:`Connection.attach`)."""
        ...

    def ended(self, connection: Connection) -> None:
        """The TCP connection is gone (after ``Door.closed``); forget it."""
        ...


class Connection(asyncio.BufferedProtocol):
    """A server-side WebSocket connection, from accept to ``connection_lost``."""

    __slots__ = (
        "_behind_since",
        "_close_timer",
        "_drain_waiters",
        "_early",
        "_fragments",
        "_fragments_text",
        "_host",
        "_muted",
        "_open_timer",
        "_pong_waiters",
        "_queued",
        "_write_paused",
        "awaiting_pong",
        "client",
        "door",
        "expiry",
        "id",
        "traffic",
        "transport",
        "ws",
    )

    def __init__(self, host: Host) -> None:
        self._host = host
        self.id = f"c{next(_ids)}"
        # No extensions are offered, so permessage-deflate is never negotiated: it would cost
        # one compression per receiver of every broadcast (docs/performance.md).
        self.ws = ServerProtocol(
            select_subprotocol=host.select_subprotocol,
            max_size=host.max_message_size,
            logger=host.wire_logger,
        )
        self.transport: asyncio.Transport | None = None
        self.door: Door | None = None
        self.client: str | None = None
        """The client's address as the connection caps count it, once admitted."""
        self.expiry: asyncio.TimerHandle | None = None
        """When the connection's tokens run out (access control only)."""
        self.traffic = UNROUTED
        """The counters of the connection's door, set when the upgrade is routed."""
        self.awaiting_pong = False
        self._queued: list[bytes] | None = None
        self._behind_since: float | None = None
        self._early: list[str | bytes] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._muted = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._pong_waiters: list[tuple[asyncio.Future[float], float]] | None = None
        self._open_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<peer {self.id}>"

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (asyncio's or uvloop's; they share no base class with uvloop).
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self._host.connections.add(self)
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        loop = asyncio.get_running_loop()
        self._open_timer = loop.call_later(
            self._host.settings.open_timeout, self._handshake_timed_out
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._host.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        ws = self.ws
        # The parser copies what it is given into its own buffer: a view is enough.
        ws.receive_data(cast(bytes, self._host.read_buffer[:nbytes]))
        events = ws.events_received()
        self._send_data()
        for event in events:
            if type(event) is Frame:
                self._frame(event)
            elif isinstance(event, Request):
                self._handshake(event)
        # After the events: the upgrade request counts for the door it was routed to.
        self.traffic.bytes_in += nbytes
        if self._queued is not None:
            # This connection's own answers (the 101 with its greeting, a sync answer) leave
            # now, not after every other callback of the turn; what the read relayed to
            # others still waits for the Outbox's one write per receiver per turn.
            self.flush()

    def eof_received(self) -> None:
        self.ws.receive_eof()
        self._send_data()
        # Returning None closes the transport: a WebSocket never writes after the peer's EOF.

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()
        for timer in (self._open_timer, self._close_timer, self.expiry):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._close_timer = self.expiry = None
        self._queued = None
        self._early = None
        self._wake_drain_waiters()
        if self._pong_waiters is not None:
            for waiter, _ in self._pong_waiters:
                waiter.cancel()
            self._pong_waiters = None
        door, self.door = self.door, None
        if door is not None:
            try:
                door.closed()
            except Exception:
                logger.exception(
                    "%s error while releasing the connection",
                    self.id,
                    extra=self.log_fields("connection.release_failed"),
                )
        self._host.ended(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain_waiters()

    # -- the opening handshake ----------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        ws, host = self.ws, self._host
        try:
            response = host.process_request(self, request)
        except Exception:
            path = redacted_target(request.path)
            logger.exception(
                "%s error while answering %s",
                self.id,
                path,
                extra=self.log_fields("http.error", path=path),
            )
            response = ws.reject(500, "Failed to open a WebSocket connection.\n")
        if response is None:
            response = ws.accept(request)
        response.headers["Server"] = host.server_header
        ws.send_response(response)
        if ws.state is _OPEN:
            # The 101 leaves with the door's greeting (sync step 1, awareness) in one write at
            # the end of this loop turn: one send() less per connection. It is not a message.
            self._queued = [b"".join(ws.data_to_send())]
            self.traffic.messages_out -= 1
            host.outbox.schedule(self)
            if self._open_timer is not None:
                self._open_timer.cancel()
                self._open_timer = None
            try:
                host.opened(self, request)
            except Exception:
                logger.exception(
                    "%s internal error on open, closing with 1011",
                    self.id,
                    extra=self.log_fields("connection.internal_error", code=1011),
                )
                self.close(1011, "internal error")
        else:
            self._send_data()
            self._expect_close()
        # websockets' parser generator keeps the request alive for the connection's lifetime;
        # the headers are most of an idle connection's memory and nothing reads them again.
        request.headers.clear()

    def _handshake_timed_out(self) -> None:
        self._open_timer = None
        if self.ws.state is _CONNECTING and self.transport is not None:
            logger.info(
                "%s opening handshake timed out",
                self.id,
                extra=self.log_fields("connection.handshake_timeout"),
            )
            self.transport.abort()

    # -- incoming messages --------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _BINARY or opcode is _TEXT:
            if frame.fin:
                self._message(frame.data, opcode is _TEXT)
            else:
                self._fragments = [bytes(frame.data)]
                self._fragments_text = opcode is _TEXT
        elif opcode is _CONT:
            # websockets checked the sequence and the total size against max_message_size.
            fragments = self._fragments
            assert fragments is not None
            fragments.append(bytes(frame.data))
            if frame.fin:
                self._fragments = None
                self._message(b"".join(fragments), self._fragments_text)
        elif opcode is _PONG:
            self._pong()

    def _takes_messages(self) -> bool:
        if self._muted:
            return False
        ws = self.ws
        # Data frames parsed in the same read as the peer's close frame came before it: they
        # count. After our own close frame RFC 6455 still delivers data, but a peer we are
        # closing resyncs when it reconnects, so it is dropped.
        return ws.state is _OPEN or ws.close_rcvd_then_sent is True

    def _message(self, data: bytes | bytearray | memoryview, text: bool) -> None:
        if not self._takes_messages():
            return
        limit = self.ws.max_message_size
        if limit is not None and len(data) > limit:
            # Frames pipelined with the upgrade were parsed under the largest door's limit.
            self.fail(1009, f"message over {limit} bytes")
            return
        self.traffic.messages_in += 1
        message: str | bytes
        if text:
            try:
                message = bytes(data).decode()
            except UnicodeDecodeError as exc:
                self.fail(1007, f"{exc.reason} at position {exc.start}")
                return
        else:
            message = bytes(data) if type(data) is not bytes else data
        door = self.door
        if door is None:
            if self._early is None:
                self._early = []
            self._early.append(message)
            return
        self._deliver(door, message)

    def _deliver(self, door: Door, message: str | bytes) -> None:
        try:
            door.receive(message)
        except ProtocolError as exc:
            logger.warning(
                "%s protocol error, closing with %d: %s",
                self.id,
                exc.close_code,
                exc,
                extra=self.log_fields("connection.protocol_error", code=exc.close_code),
            )
            self.close(exc.close_code, exc.close_reason)
        except Exception:
            logger.exception(
                "%s internal error, closing with 1011",
                self.id,
                extra=self.log_fields("connection.internal_error", code=1011),
            )
            self.close(1011, "internal error")

    def attach(self, door: Door) -> None:
        """Serve the connection with ``door``, handing it any message that arrived before."""
        self.door = door
        early, self._early = self._early, None
        for message in early or ():
            if not self._takes_messages():
                break
            self._deliver(door, message)
        if self.transport is not None and not self.transport.is_reading():
            self.transport.resume_reading()

    def hold(self) -> None:
        """Stop reading until :meth:`attach` (while the door gets ready, e.g. a room loads)."""
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()

    def mute(self) -> None:
        """Ignore every further message (a connection whose token ran out, while it closes)."""
        self._muted = True

    # -- Peer: sending ------------------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        # Hot path, once per receiver per message: no state check here; flush() drops the
        # queue of a connection that is no longer open.
        queued = self._queued
        if queued is not None:
            queued.append(self._host.outbox.frame(data))
        else:
            outbox = self._host.outbox
            self._queued = [outbox.frame(data)]
            outbox.schedule(self)

    def flush(self) -> None:
        """Write this connection's queued frames now (the Outbox calls this once per turn)."""
        queued = self._queued
        if queued is None:
            return
        self._queued = None
        transport = self.transport
        # After a close frame no data frame may follow; a closing peer resyncs on reconnect.
        if self.ws.state is not _OPEN or transport is None or transport.is_closing():
            return
        data = queued[0] if len(queued) == 1 else b"".join(queued)
        transport.write(data)
        traffic = self.traffic
        traffic.messages_out += len(queued)
        traffic.bytes_out += len(data)
        buffered = transport.get_write_buffer_size()
        if buffered > self._host.settings.send_buffer_high:
            self._check_slow(buffered)
        else:
            self._behind_since = None

    def _check_slow(self, buffered: int) -> None:
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        settings = self._host.settings
        if (
            buffered > settings.send_buffer_max
            or now - self._behind_since >= settings.slow_consumer_seconds
        ):
            self.traffic.slow_dropped += 1
            logger.warning(
                "%s dropped: receiver too slow (%d bytes waiting for %.1f s)",
                self.id,
                buffered,
                now - self._behind_since,
                extra=self.log_fields(
                    "connection.slow_consumer",
                    buffered_bytes=buffered,
                    behind_seconds=round(now - self._behind_since, 3),
                ),
            )
            # The close frame would queue behind the backlog it is meant to end: abort.
            self.abort()

    def write_frame(self, frame: bytes) -> None:
        """Write one framed message at once, after anything queued (the stream door)."""
        if self.ws.state is not _OPEN or self.transport is None:
            return
        self.flush()
        self.transport.write(frame)
        traffic = self.traffic
        traffic.messages_out += 1
        traffic.bytes_out += len(frame)

    # -- closing ------------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the TCP connection is cut if it does not complete."""
        self._end(self.ws.send_close, code, reason)

    def fail(self, code: int, reason: str) -> None:
        """Close without waiting for the peer's close frame (RFC 6455 §7.1.7)."""
        self._end(self.ws.fail, code, reason)

    def _end(self, send_close: Callable[[int, str], None], code: int, reason: str) -> None:
        if self.ws.state is not _OPEN:
            return
        self.flush()  # what was queued before the close frame still goes out
        send_close(code, reason)
        self._send_data()
        self._expect_close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    def _expect_close(self) -> None:
        if self._close_timer is None and self.ws.close_expected():
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self._host.settings.close_timeout, self.abort)

    def _send_data(self) -> None:
        transport = self.transport
        assert transport is not None
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
                self.traffic.bytes_out += len(data)
            elif transport.can_write_eof():
                with contextlib.suppress(OSError):
                    transport.write_eof()
            else:  # TLS cannot half-close
                transport.close()

    # -- keepalive and flow control -----------------------------------------------------------

    def keepalive(self) -> None:
        """Ping; close with 1011 if the previous ping is still unanswered (the server sweeps)."""
        if self.ws.state is not _OPEN:
            return
        if self.awaiting_pong:
            logger.info(
                "%s missed the keepalive ping, closing with 1011",
                self.id,
                extra=self.log_fields("connection.ping_timeout", code=1011),
            )
            self.fail(1011, "keepalive ping timeout")
            return
        self.awaiting_pong = True
        self.ws.send_ping(b"")
        self._send_data()

    def ping(self) -> asyncio.Future[float] | None:
        """Send a ping; the future completes with the round trip in seconds on the next pong."""
        if self.ws.state is not _OPEN:
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[float] = loop.create_future()
        if self._pong_waiters is None:
            self._pong_waiters = []
        self._pong_waiters.append((waiter, loop.time()))
        self.ws.send_ping(b"")
        self._send_data()
        return waiter

    def _pong(self) -> None:
        self.awaiting_pong = False
        waiters, self._pong_waiters = self._pong_waiters, None
        if waiters:
            now = asyncio.get_running_loop().time()
            for waiter, sent in waiters:
                if not waiter.done():
                    waiter.set_result(now - sent)

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark (or the connection ends)."""
        if not self._write_paused or self.transport is None or self.transport.is_closing():
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    @property
    def is_open(self) -> bool:
        return self.ws.state is _OPEN

    @property
    def remote_address(self) -> str:
        """``host:port`` of the TCP peer, for logs."""
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "-"

    def log_fields(self, event: str, **fields: Any) -> dict[str, Any]:
        """The ``extra`` of a log record about this connection (docs/operations.md "Logs")."""
        return {
            "event": event,
            "conn": self.id,
            "door": self.traffic.door,
            "peer": self.remote_address,
            "client": self.client,
            **fields,
        }


__all__ = [
    "READ_BUFFER_SIZE",
    "UNROUTED",
    "WRITE_HIGH",
    "WRITE_LOW",
    "Connection",
    "Door",
    "Host",
    "Traffic",
]
