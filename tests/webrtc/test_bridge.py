"""The server as a WebRTC peer (``serve --bridge-webrtc``) with stock clients in Node.

Runs in a private network namespace (conftest.py). The WebRTC peers are npm y-webrtc 10.3.0 in
Node with ``@roamhq/wrtc`` (``js/ywebrtc_agent.mjs``), with the stock data-channel protocol or
with the Edrys-Lite fork's chunk framing (the classroom page's ``web/src/framing.js``); the
WebSocket members are npm y-websocket in Node or our Python client. Every WebRTC peer uses
Edrys-Lite's password ``password``, so all signaling is encrypted (protocols.md §4.5).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.security.tokens import Role, TokenSigner
from tests.conftest import wait_for
from tests.interop.node_agent import NodeAgent

if TYPE_CHECKING:
    from .conftest import RelayProcess, StartServer

PASSWORD = "password"
TIMEOUT = 30.0
RTC_AGENT = "js/ywebrtc_agent.mjs"
# Keys in no sorted order, nested: a Yrs re-encoding would reorder them (protocols.md §2.9).
FROM_WEBRTC = {"zeta": 1, "alpha": {"y": [3, {"q": 1, "b": 2}], "b": None, "k": "v"}, "m": 0}
FROM_WEBSOCKET = {"name": "Lab", "meta": {"z": True, "a": "x", "m": [1, 2]}, "id": "ws"}


def stringify(value: Any) -> str:
    """What JSON.stringify gives for ``value`` (keys in insertion order)."""
    return json.dumps(value, separators=(",", ":"))


def health(server: RelayProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


async def bridged_peers(server: RelayProcess) -> int:
    state = await asyncio.to_thread(health, server)
    return int(state["bridge"]["peers"])


async def until_bridged(server: RelayProcess, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while await bridged_peers(server) != count:
            await asyncio.sleep(0.1)


async def open_rtc(agent: NodeAgent, server: RelayProcess, name: str, room: str) -> None:
    await agent.call("open", name=name, signaling=[server.ws_url], room=room, password=PASSWORD)


def ws_base(server: RelayProcess) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def test_check_stock_webrtc_and_websocket_peers_share_one_room(
    start_server: StartServer,
) -> None:
    """The issue's Check: each sees the other's edit; later a lone WebRTC peer gets both. Then
    the server restarts with nobody in the room, and a new WebRTC peer and a new WebSocket
    member each get both edits, key order intact, from storage alone."""
    server = start_server("--bridge-webrtc", store="sqlite")
    room = "Check" + uuid.uuid4().hex[:8]
    rtc = await NodeAgent.start(RTC_AGENT, "plain")
    ws = await NodeAgent.start()
    try:
        await open_rtc(rtc, server, "a", room)
        await ws.call("open", name="w", url=ws_base(server), room=room)
        await rtc.call("map_set_json", name="a", key="rtc", json=stringify(FROM_WEBRTC))
        await ws.call("map_set_json", name="w", key="ws", json=stringify(FROM_WEBSOCKET))
        await ws.until("map_get_json", stringify(FROM_WEBRTC), TIMEOUT, name="w", key="rtc")
        await rtc.until("map_get_json", stringify(FROM_WEBSOCKET), TIMEOUT, name="a", key="ws")
        conns = await rtc.call("conns", name="a")
        assert len(conns) == 1 and conns[0]["connected"], conns  # the server is its only peer

        await rtc.call("close", name="a")
        await ws.call("close", name="w")
        await until_bridged(server, 0)

        await open_rtc(rtc, server, "b", room)
        await rtc.until("map_get_json", stringify(FROM_WEBRTC), TIMEOUT, name="b", key="rtc")
        await rtc.until("map_get_json", stringify(FROM_WEBSOCKET), TIMEOUT, name="b", key="ws")
        assert await rtc.call("map_keys", name="b") == ["rtc", "ws"]

        await rtc.call("close", name="b")
        await until_bridged(server, 0)
        await asyncio.to_thread(server.restart)
        await open_rtc(rtc, server, "c", room)
        await ws.call("open", name="v", url=ws_base(server), room=room)
        for agent, name in ((rtc, "c"), (ws, "v")):
            await agent.until("map_get_json", stringify(FROM_WEBRTC), TIMEOUT, name=name, key="rtc")
            await agent.until(
                "map_get_json", stringify(FROM_WEBSOCKET), TIMEOUT, name=name, key="ws"
            )
    finally:
        await rtc.close()
        await ws.close()


async def test_edrys_framing_peers_and_a_websocket_member(start_server: StartServer) -> None:
    """The fork's chunk framing (as the classroom page speaks it), awareness both ways, and the
    bridge's Edrys identity (43/44) verified by an Edrys-framed Python peer."""
    server = start_server("--bridge-webrtc")
    room = "Edrys" + uuid.uuid4().hex[:8]
    rtc = await NodeAgent.start(RTC_AGENT, "edrys")
    try:
        await open_rtc(rtc, server, "a", room)
        big = "x" * 40_000  # more than two chunks of 15 872 bytes
        await rtc.call("map_set_json", name="a", key="big", json=stringify(big))
        rtc_id = await rtc.call("awareness_set", name="a", state={"user": {"name": "node"}})
        async with Classroom(ws_base(server), room, transport="websocket") as ws:
            shared = ws.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: shared.to_py().get("big") == big, TIMEOUT)
            await wait_for(lambda: ws.peers().get(rtc_id) == {"user": {"name": "node"}}, TIMEOUT)
            ws.set_presence({"user": {"name": "python"}})
            shared["from_ws"] = "python"

            def node_sees_ws(states: list[list[Any]]) -> bool:
                return [ws.client_id, {"user": {"name": "python"}}] in states

            await rtc.until("awareness_states", node_sees_ws, TIMEOUT, name="a")
            await rtc.until("map_get_json", '"python"', TIMEOUT, name="a", key="from_ws")

            async with Classroom(ws_base(server), room, transport="webrtc") as py:
                async with asyncio.timeout(TIMEOUT):
                    await py.wait_synced()
                transport = py._active
                await wait_for(lambda: len(transport.verified_users()) == 1, TIMEOUT)  # type: ignore[union-attr]
                # only the bridge sends Edrys' identity (the Node peer is stock y-webrtc)
                (user,) = transport.verified_users().values()  # type: ignore[union-attr]
                assert re.fullmatch(r"[A-Za-z0-9+/]{87}=_[A-Za-z0-9]{6}", user), user
                await wait_for(lambda: py.doc.get("m", type=pycrdt.Map).to_py().get("big") == big)
        assert "framing=edrys" in server.log()
        traffic = await rtc.call("traffic")  # the Node side did frame its messages
        assert traffic["messagesOut"] >= 3 and traffic["bytesOut"] > len(big), traffic
    finally:
        await rtc.close()


async def test_server_restart_peers_reconnect_to_the_bridge(start_server: StartServer) -> None:
    """kill the server (SIGTERM) and start it again: the WebRTC peer stays and reconnects."""
    server = start_server("--bridge-webrtc", store="sqlite")
    room = "Restart" + uuid.uuid4().hex[:8]
    rtc = await NodeAgent.start(RTC_AGENT, "plain")
    try:
        await open_rtc(rtc, server, "a", room)
        await rtc.call("map_set_json", name="a", key="before", json="1")
        async with Classroom(ws_base(server), room, transport="websocket") as ws:
            shared = ws.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: shared.to_py().get("before") == 1, TIMEOUT)
        await asyncio.to_thread(server.restart)
        await rtc.call("map_set_json", name="a", key="after", json="2")
        await until_bridged(server, 1)
        async with Classroom(ws_base(server), room, transport="websocket") as ws:
            shared = ws.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: shared.to_py() == {"before": 1, "after": 2}, TIMEOUT)
            shared["from_ws"] = "3"
            await rtc.until("map_get_json", '"3"', TIMEOUT, name="a", key="from_ws")
    finally:
        await rtc.close()


async def test_over_the_room_limit_peers_stay_peer_to_peer(start_server: StartServer) -> None:
    server = start_server("--bridge-webrtc", "--bridge-max-peers-per-room", "1")
    room = "Limit" + uuid.uuid4().hex[:8]
    # y-webrtc allows one provider per room and process: one agent per peer
    a, b = await NodeAgent.start(RTC_AGENT), await NodeAgent.start(RTC_AGENT)
    try:
        await open_rtc(a, server, "a", room)
        await until_bridged(server, 1)
        await open_rtc(b, server, "b", room)

        def connected(count: int) -> Any:
            return lambda conns: sum(c["connected"] for c in conns) == count

        await a.until("conns", connected(2), TIMEOUT, name="a")  # the server and b
        await b.until("conns", connected(1), TIMEOUT, name="b")  # a only
        await b.call("map_set_json", name="b", key="b", json='"unbridged"')
        async with Classroom(ws_base(server), room, transport="websocket") as ws:
            shared = ws.doc.get("m", type=pycrdt.Map)
            # b's edit reaches the server through a, which passes on what it gets (gossip)
            await wait_for(lambda: shared.to_py().get("b") == "unbridged", TIMEOUT)
            shared["w"] = "websocket"
            await b.until("map_get_json", '"websocket"', TIMEOUT, name="b", key="w")
        assert await bridged_peers(server) == 1
        assert "reached a limit" in server.log()
        assert (await asyncio.to_thread(health, server))["bridge"]["peers_refused"] >= 1
    finally:
        await a.close()
        await b.close()


SECRET = "bridge-test-secret-0123456789abcdef"


def token(room: str, role: Role) -> str:
    return TokenSigner((SECRET,)).mint(room, role, now=int(time.time()), ttl_seconds=600)


async def test_read_only_tokens_hold_across_the_bridge(start_server: StartServer) -> None:
    """With access control on, the bridge takes document updates only from WebRTC peers whose
    signaling token may write; a read-only WebSocket member still cannot write either."""
    server = start_server("--bridge-webrtc", "--auth-secret", SECRET)
    read_room, write_room = "Read" + uuid.uuid4().hex[:8], "Write" + uuid.uuid4().hex[:8]
    rtc = await NodeAgent.start(RTC_AGENT)
    signaling = server.ws_url + "?token="
    try:
        for name, room, role in (("r", read_room, Role.READ), ("w", write_room, Role.WRITE)):
            await rtc.call(
                "open",
                name=name,
                signaling=[signaling + token(room, role)],
                room=room,
                password=PASSWORD,
            )
        await until_bridged(server, 2)
        await rtc.call("map_set_json", name="r", key="reader", json='"r"')
        await rtc.call("map_set_json", name="w", key="writer", json='"w"')
        reader_id = await rtc.call("awareness_set", name="r", state={"after": "the edit"})

        def member(room: str, role: Role) -> Classroom:
            params = {"token": token(room, role)}
            return Classroom(ws_base(server), room, transport="websocket", params=params)

        async with (
            member(read_room, Role.WRITE) as ws,
            member(read_room, Role.READ) as ro,
            member(write_room, Role.WRITE) as other,
        ):
            other_map = other.doc.get("m", type=pycrdt.Map)
            await wait_for(lambda: other_map.to_py().get("writer") == "w", TIMEOUT)
            # the reader's awareness went out after its edit, on the same ordered channel
            await wait_for(lambda: reader_id in ws.peers(), TIMEOUT)
            shared = ws.doc.get("m", type=pycrdt.Map)
            assert "reader" not in shared.to_py()
            ro.doc.get("m", type=pycrdt.Map)["read_only_ws"] = "x"
            ro.set_presence({"after": "the edit"})
            await rtc.until(
                "awareness_states",
                lambda s: [ro.client_id, {"after": "the edit"}] in s,
                TIMEOUT,
                name="r",
            )
            shared["ws"] = "w2"
            await rtc.until("map_get_json", '"w2"', TIMEOUT, name="r", key="ws")
            assert await rtc.call("map_get_json", name="r", key="read_only_ws") is None
        # at least the reader's write (its step 2) and the read-only member's update
        assert (await asyncio.to_thread(health, server))["security"]["read_only_dropped"] >= 2
    finally:
        await rtc.close()


async def test_python_auto_client_in_an_empty_room_is_answered_by_the_bridge(
    start_server: StartServer,
) -> None:
    server = start_server("--bridge-webrtc")
    room = "Auto" + uuid.uuid4().hex[:8]
    options = ClientOptions(webrtc_fallback_seconds=TIMEOUT)
    async with Classroom(ws_base(server), room, transport="auto", options=options) as py:
        async with asyncio.timeout(TIMEOUT):
            await py.wait_synced()
        assert py.transport == "webrtc"
        assert py._active.link_count == 1  # type: ignore[union-attr]


async def test_python_webrtc_client_alone_gets_the_stored_room_from_the_bridge(
    start_server: StartServer,
) -> None:
    """The bridge is still decrypting the room's first announce when its echo reaches the
    client, so the echo must not count the client as alone (protocols.md §4.11): it waits for
    the bridge and gets what the WebSocket door stored, instead of syncing with nobody."""
    server = start_server("--bridge-webrtc")
    room = "Stored" + uuid.uuid4().hex[:8]
    async with Classroom(ws_base(server), room, transport="websocket") as writer:
        await writer.wait_synced()
        writer.doc.get("data", type=pycrdt.Map)["setup"] = FROM_WEBSOCKET
        await writer.flush()
    options = ClientOptions(webrtc_fallback_seconds=TIMEOUT)
    async with Classroom(ws_base(server), room, transport="webrtc", options=options) as alone:
        async with asyncio.timeout(TIMEOUT):
            await alone.wait_synced()
        stored = alone.doc.get("data", type=pycrdt.Map).get("setup")
        assert stored == FROM_WEBSOCKET
