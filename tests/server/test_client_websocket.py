"""The y-websocket transport against an in-process server: backoff, queue overflow, resync."""

from __future__ import annotations

import asyncio
import logging
import time

import pycrdt
import pytest

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.client.options import MIN_SEND_QUEUE
from edrys_relay.client.websocket import backoff_delay, room_url
from edrys_relay.protocol.routing import token_url
from edrys_relay.security.tokens import Role, TokenSigner
from edrys_relay.server.app import RelayServer
from tests.conftest import StartRelay, wait_for


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


async def test_a_token_url_as_the_server_url(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """The Python client takes ``.../t/<token>`` like Edrys-Lite does, and logs it redacted."""
    secret = "client-secret-0123456789"
    relay = await start_relay(auth_secrets=(secret,))
    signer = TokenSigner((secret,))
    good, other = (
        signer.mint(room, Role.WRITE, now=int(time.time()), ttl_seconds=60) for room in ("Lab", "X")
    )
    caplog.set_level(logging.INFO, logger="edrys_relay.client")
    plain = f"ws://127.0.0.1:{relay.port}"
    refused = Classroom(token_url(plain, other), "Lab", transport="websocket")
    async with refused, Classroom(token_url(plain, good), "Lab", transport="websocket") as ok:
        async with asyncio.timeout(10):
            await ok.wait_synced()
        await wait_for(lambda: relay.stats.refused_token >= 2, 10)
        assert not refused.synced.is_set()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("edrys_relay.client")]
    assert any(f"{plain}/t/…/Lab: server rejected" in line and "401" in line for line in logged)
    assert not any(piece in line for line in logged for piece in other.split(".")[2:])
