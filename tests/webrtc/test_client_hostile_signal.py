"""A peer that sends broken signals does not take the Python peer's signaling down.

Runs in a private network namespace (conftest.py). A raw signaling client with the room key
announces itself, waits for the Python peer's offer, and answers with a malformed answer, a
malformed candidate, a malformed offer and undecryptable data. Afterwards a second Python peer
still finds the first one through signaling and syncs with it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

import pycrdt
from websockets.asyncio.client import connect

from edrys_relay.client import Classroom
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt
from tests.conftest import wait_for

if TYPE_CHECKING:
    from .conftest import RelayProcess

TIMEOUT = 30.0


async def test_broken_signals_are_survived(relay_server: RelayProcess) -> None:
    room = "Hostile" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    key = derive_key("password", room)
    me = str(uuid.uuid4())

    def publish(inner: Any) -> str:
        data = encrypt(key, inner) if isinstance(inner, dict) else inner
        return json.dumps({"type": "publish", "topic": room, "data": data})

    async with Classroom(url, room, transport="webrtc") as target:
        target.doc.get("m", type=pycrdt.Map)["k"] = "v"
        async with connect(url + "/") as hostile:
            await hostile.send(json.dumps({"type": "subscribe", "topics": [room]}))
            await hostile.send(publish({"type": "announce", "from": me}))
            async with asyncio.timeout(TIMEOUT):
                while True:
                    message = json.loads(await hostile.recv())
                    inner = decrypt(key, message["data"])
                    if inner["type"] == "announce" and inner["from"] != me:
                        # the target joined signaling after our announce: announce again
                        await hostile.send(publish({"type": "announce", "from": me}))
                    elif inner.get("to") == me and inner["signal"]["type"] == "offer":
                        break
            them = inner["from"]
            base = {"to": them, "from": me, "type": "signal", "token": 1.0}
            for signal in (
                {"type": "answer", "sdp": "v=0\r\nm=application 9 UDP/DTLS/SCTP\r\n"},
                {"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp"}},
                {"type": "offer", "sdp": "v=0\r\nm=application 9 UDP/DTLS/SCTP\r\n"},
                {"type": "offer"},
            ):
                await hostile.send(publish({**base, "signal": signal}))
            await hostile.send(publish("bm90IGVuY3J5cHRlZA=="))
            await hostile.send("not json")
        async with Classroom(url, room, transport="webrtc") as late:
            async with asyncio.timeout(TIMEOUT):
                await late.wait_synced()
            shared = late.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: shared.to_py() == {"k": "v"}, TIMEOUT)
