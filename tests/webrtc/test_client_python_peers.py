"""Two Python WebRTC peers (aiortc) through our signaling.

Runs in a private network namespace (conftest.py). With the fork's chunk framing (and the Edrys
password) a message larger than one chunk (15 872 bytes) travels both ways, so multi-chunk
reassembly is exercised on a real data channel; with plain framing and no password the same
round trip works with unencrypted signaling.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pycrdt
import pytest

from edrys_relay.client import Classroom, ClientOptions, Framing
from edrys_relay.protocol.chunking import CHUNK_SIZE
from tests.conftest import wait_for

if TYPE_CHECKING:
    from .conftest import RelayProcess

TIMEOUT = 30.0


@pytest.mark.parametrize(
    ("framing", "password"), [("edrys", "password"), ("plain", None)], ids=["edrys", "plain"]
)
async def test_two_python_peers_round_trip(
    relay_server: RelayProcess, framing: Framing, password: str | None
) -> None:
    room = "PyPy" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    options = ClientOptions(framing=framing, password=password)
    async with (
        Classroom(url, room, transport="webrtc", options=options) as a,
        Classroom(url, room, transport="webrtc", options=options) as b,
    ):
        map_a = a.doc.get("m", type=pycrdt.Map)
        map_b = b.doc.get("m", type=pycrdt.Map)
        map_a["small"] = {"from": "a"}
        async with asyncio.timeout(TIMEOUT):
            await a.wait_synced()
            await b.wait_synced()
        await wait_for(lambda: map_b.to_py().get("small") == {"from": "a"}, TIMEOUT)

        big = "x" * (3 * CHUNK_SIZE + 17)
        map_b["big"] = big
        await wait_for(lambda: map_a.to_py().get("big") == big, TIMEOUT)
        map_a["big2"] = big + "y"
        await wait_for(lambda: map_b.to_py().get("big2") == big + "y", TIMEOUT)

        a.set_presence({"name": "a"})
        await wait_for(lambda: {"name": "a"} in b.peers().values(), TIMEOUT)

        received: list[object] = []
        b.add_message_listener(lambda peer, value: received.append(value))
        assert a.send_message({"subject": "hi"}) == 1
        await wait_for(lambda: received == [{"subject": "hi"}], TIMEOUT)
        for classroom in (a, b):
            assert classroom.transport == "webrtc"
            links = list(classroom._active.links.values())  # type: ignore[union-attr]
            assert len(links) == 1 and links[0].open
            encoder = links[0].encoder
            if framing == "edrys":  # the fork framing was used, with several chunks per update
                assert encoder is not None and encoder.next_tx_ord >= 3
            else:
                assert encoder is None
        # Edrys identity (43/44) is exchanged with the fork framing only
        for me, other in ((a, b), (b, a)):
            verified = me._active.verified_users()  # type: ignore[union-attr]
            their_identity = other._active.identity  # type: ignore[union-attr]
            if framing == "edrys":
                assert their_identity is not None
                assert list(verified.values()) == [their_identity.user_id]
            else:
                assert verified == {} and their_identity is None
