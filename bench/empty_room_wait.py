"""How soon a peer already in a room makes itself seen to a newcomer (``empty_room_seconds``).

An empty WebRTC room counts as synced once nobody spoke up for ``empty_room_seconds`` (where the
signaling server does not count subscribers, docs/client.md "Empty rooms"). This measures what
that timer has to cover: an in-process edrys-relay on 127.0.0.1, one aiortc peer in a fresh
room, then a newcomer; the time from the newcomer's signaling connection to the first message
from the peer (its offer). The newcomer gathers no ICE candidates (relay policy, no TURN), so no
connectivity check is ever sent; nothing leaves 127.0.0.1.

    python bench/empty_room_wait.py --joins 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.client.webrtc import WebRtcTransport
from edrys_relay.config import Settings
from edrys_relay.server.app import RelayServer


def rtc_of(classroom: Classroom) -> WebRtcTransport:
    active = classroom._active
    assert isinstance(active, WebRtcTransport)
    return active


async def one_join(url: str) -> float:
    room = "Bench" + uuid.uuid4().hex[:8]
    async with Classroom(url, room, transport="webrtc") as present:
        async with asyncio.timeout(30):
            await present.wait_synced()  # alone: the server counted one subscriber
        newcomer_options = ClientOptions(ice_transport_policy="relay")
        async with Classroom(url, room, transport="webrtc", options=newcomer_options) as newcomer:
            rtc = rtc_of(newcomer)
            async with asyncio.timeout(30):
                await rtc.signaling_connected.wait()
                start = time.perf_counter()
                await rtc.peers_seen.wait()
            return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(host="127.0.0.1", port=0, store="memory")
    async with RelayServer(settings) as server:
        url = f"ws://127.0.0.1:{server.port}"
        waits = [await one_join(url) for _ in range(args.joins)]
    ms = sorted(w * 1000 for w in waits)
    print(
        f"aiortc peer seen by a newcomer, {len(ms)} joins: median {statistics.median(ms):.1f} ms,"
        f" max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
