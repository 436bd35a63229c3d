"""Prototype: edrys-relay's hubs on the picows WebSocket stack, to measure the stack (bench only).

The same ``RoomHub``/``TopicHub`` code as the product (pycrdt validation, raw log, awareness),
routed by the same ``route_request``; only the WebSocket layer differs. Not a product: no
HTTP pages, no fragmented messages, no security checks, no slow-consumer policy.

    python bench/proto_picows.py --port 1234     # prints "listening on" when ready
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import sys

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from edrys_relay.config import Settings
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import SignalingRoute, YjsRoute, route_request
from edrys_relay.server.rooms import Room, RoomHub
from edrys_relay.server.topics import TopicHub

logger = logging.getLogger("proto_picows")
_ids = itertools.count(1)


class PicowsPeer:
    """A picows connection as a hub peer; picows frames and writes on each send."""

    __slots__ = ("id", "transport")

    def __init__(self, transport: WSTransport) -> None:
        self.transport = transport
        self.id = f"p{next(_ids)}"

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            self.transport.send(WSMsgType.TEXT, data.encode())
        else:
            self.transport.send(WSMsgType.BINARY, data)

    def close(self, code: int, reason: str) -> None:
        self.transport.send_close(code, reason.encode())  # type: ignore[arg-type]
        self.transport.disconnect()


class Listener(WSListener):  # type: ignore[misc]
    """One connection: Yjs room member or signaling client."""

    def __init__(self, app: App, route: YjsRoute | SignalingRoute) -> None:
        self.app = app
        self.route = route
        self.peer: PicowsPeer | None = None
        self.room: Room | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.peer = PicowsPeer(transport)
        if isinstance(self.route, YjsRoute):
            self.room = self.app.rooms.join(self.route.room, self.peer)
        else:
            self.app.topics.connect(self.peer)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        assert self.peer is not None
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        try:
            if kind == WSMsgType.BINARY and self.room is not None:
                self.room.receive(self.peer, frame.get_payload_as_bytes())
            elif kind == WSMsgType.TEXT and self.room is None:
                self.app.topics.receive(
                    self.peer, frame.get_payload_as_utf8_text(), max_topic_length=1024
                )
        except ProtocolError as exc:
            self.peer.close(exc.close_code, exc.close_reason)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.peer is None:
            return
        if self.room is not None:
            self.app.rooms.leave(self.room, self.peer)
        else:
            self.app.topics.disconnect(self.peer)


class App:
    def __init__(self) -> None:
        self.settings = Settings(host="127.0.0.1", port=0)
        self.rooms = RoomHub(self.settings)
        self.topics = TopicHub()

    def listener(self, request: WSUpgradeRequest) -> Listener | None:
        try:
            route = route_request(request.path.decode(), max_room_length=256)
        except (ProtocolError, UnicodeDecodeError):
            return None
        if isinstance(route, YjsRoute | SignalingRoute):
            return Listener(self, route)
        return None


async def start(port: int) -> int:
    """Start listening (``port`` 0 picks one); return the port."""
    app = App()
    server = await ws_create_server(
        app.listener,
        "127.0.0.1",
        port,
        enable_auto_ping=_AUTO_PING,
        use_aiofastnet=_FASTNET,
        auto_ping_idle_timeout=30,
        auto_ping_reply_timeout=30,
        read_buffer_init_size=1024,
    )
    _keep.append((app, server))
    bound = int(server.sockets[0].getsockname()[1])

    async def sweep() -> None:
        while True:
            await asyncio.sleep(3)
            app.rooms.sweep()

    _keep.append(asyncio.create_task(sweep()))
    return bound


_keep: list[object] = []
_AUTO_PING = os.environ.get("PROTO_AUTO_PING", "1") == "1"
_FASTNET = os.environ.get("PROTO_FASTNET", "0") == "1"


async def serve(port: int) -> None:
    await start(port)
    print(f"proto-picows listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=1234)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
