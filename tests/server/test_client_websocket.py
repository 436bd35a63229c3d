"""The y-websocket transport against an in-process server: backoff, queue overflow, resync."""

from __future__ import annotations

import asyncio

import pycrdt
import pytest

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.client.options import MIN_SEND_QUEUE
from edrys_relay.client.websocket import backoff_delay, room_url
from edrys_relay.server.app import RelayServer
from tests.conftest import wait_for


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    options = ClientOptions(backoff_initial=0.1, backoff_max=2.5)
    for failures, base in ((0, 0.1), (1, 0.2), (3, 0.8), (5, 2.5), (500, 2.5)):
        for _ in range(20):
            assert base * 0.5 <= backoff_delay(failures, options) <= base


def test_room_url_keeps_the_room_unencoded() -> None:
    assert room_url("ws://h:1/", "A b") == "ws://h:1/A b"
    assert (
        room_url("ws://h:1", "R", {"userid": "Station x/="}) == "ws://h:1/R?userid=Station+x%2F%3D"
    )


def test_send_queue_below_a_handshake_is_refused() -> None:
    with pytest.raises(ValueError):
        ClientOptions(send_queue=MIN_SEND_QUEUE - 1)


async def test_send_queue_overflow_reconnects_and_resyncs(relay: RelayServer) -> None:
    url = f"ws://127.0.0.1:{relay.port}"
    options = ClientOptions(send_queue=MIN_SEND_QUEUE, backoff_max=0.2)
    async with (
        Classroom(url, "Overflow", transport="websocket", options=options) as writer,
        Classroom(url, "Overflow", transport="websocket") as reader,
    ):
        async with asyncio.timeout(10):
            await writer.wait_synced()
        shared = writer.doc.get("m", type=pycrdt.Map)
        for i in range(50):  # no await in between: the small queue overflows
            shared[f"k{i}"] = i
        transport = writer._active
        await wait_for(lambda: getattr(transport, "connections_made", 0) >= 2, 10)
        expected = {f"k{i}": float(i) for i in range(50)}
        received = reader.doc.get("m", type=pycrdt.Map)
        await wait_for(lambda: received.to_py() == expected, 10)
