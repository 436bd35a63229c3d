"""The known-crasher corpus replayed against a running server (docs/threats.md B5): issue #6.

Each input closes only its sender with the expected code; the server keeps its rooms, and a
healthy pair in another room keeps syncing.
"""

from __future__ import annotations

import os

import pytest

from edrys_relay.server.app import RelayServer
from fuzz.corpus import Crasher, known_crashers
from tests.conftest import open_ws
from tests.server.test_bad_input import HealthyPair
from tests.server.test_limits import closed_with


@pytest.mark.parametrize("crasher", known_crashers(), ids=lambda c: c.name)
async def test_known_crasher_closes_only_its_sender(relay: RelayServer, crasher: Crasher) -> None:
    pid = os.getpid()
    async with HealthyPair(relay) as healthy:
        await healthy.exchange()
        if crasher.door == "signaling":
            async with await open_ws(relay, "/signaling") as bad:
                await bad.send(crasher.frame.decode())
                await closed_with(bad, crasher.close_code)
        else:
            async with await open_ws(relay, "/victim") as bad:
                await bad.recv()
                await bad.send(crasher.frame)
                await closed_with(bad, crasher.close_code)
        await healthy.exchange()
    assert os.getpid() == pid and relay.health()["status"] == "ok"
    room = relay.rooms.rooms.get("victim")
    assert room is None or room.update_count == 0
