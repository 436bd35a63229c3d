"""The ``/stream`` door with access control on (docs/threats.md B15, A9): issue #6."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidStatus

from edrys_relay.security.tokens import Role, TokenSigner
from tests.conftest import StartRelay, open_ws
from tests.server.streamkit import (
    fake_jpeg,
    join,
    json_frame,
    recv_json,
    register,
    stream_client,
    sync,
)

SECRET = "stream-secret-0123456789"
SIGNER = TokenSigner((SECRET,))


def token(room: str, role: Role) -> str:
    return SIGNER.mint(room, role, now=int(time.time()), ttl_seconds=600)


async def test_only_a_source_token_registers_a_source(start_relay: StartRelay) -> None:
    relay = await start_relay(auth_secrets=(SECRET,), stream_ping_interval=60.0)
    with pytest.raises(InvalidStatus) as info:
        await open_ws(relay, "/stream")
    assert info.value.response.status_code == 401
    teacher, greeting = await stream_client(relay, f"?token={token('lab', Role.SOURCE)}")
    assert "sources" not in greeting  # no room listing with access control (A9)
    pupil, _ = await stream_client(relay, f"?token={token('lab', Role.READ)}")
    # a pupil cannot take over the room's source, first come or not
    assert await register(pupil, "lab") == {
        "type": "error",
        "message": "Not authorized for room lab",
    }
    await join(pupil, "other")
    assert await recv_json(pupil) == {"type": "error", "message": "Not authorized for room other"}
    await join(pupil, "lab")
    assert await sync(pupil) == []
    assert await register(teacher, "lab") == {"type": "source-registered", "roomId": "lab"}
    assert await recv_json(pupil) == {"type": "source-available", "roomId": "lab"}
    frame = json_frame(1, fake_jpeg(100))
    await teacher.send(frame)
    assert await pupil.recv() == frame
    assert relay.streams.stats.refused == 2
    for ws in (teacher, pupil):
        await ws.close()


async def test_tokens_in_the_path_prefix(start_relay: StartRelay) -> None:
    """A module given ``wss://host/t/<token>/stream`` as its stream URL (docs/security.md)."""
    relay = await start_relay(auth_secrets=(SECRET,), stream_ping_interval=60.0)
    with pytest.raises(InvalidStatus) as info:
        await open_ws(relay, f"/t/{token('lab', Role.SOURCE)[:-2]}xx/stream")
    assert info.value.response.status_code == 401
    station = await open_ws(relay, f"/t/{token('lab', Role.SOURCE)}/stream", max_size=None)
    viewer = await open_ws(relay, f"/t/{token('lab', Role.READ)}/stream?x=1", max_size=None)
    for ws in (station, viewer):
        assert (await recv_json(ws))["type"] == "info"
    assert await register(viewer, "lab") == {
        "type": "error",
        "message": "Not authorized for room lab",
    }
    await join(viewer, "lab")
    assert await register(station, "lab") == {"type": "source-registered", "roomId": "lab"}
    assert await recv_json(viewer) == {"type": "source-available", "roomId": "lab"}
    frame = json_frame(1, fake_jpeg(100))
    await station.send(frame)
    assert await viewer.recv() == frame
    for ws in (station, viewer):
        await ws.close()
