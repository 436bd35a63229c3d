"""Two stock y-webrtc providers in headless Chromium sync a Y.Doc peer to peer, using only our
server for signaling (protocols.md §4.2-§4.5).

Runs inside a private network namespace (see conftest.py). What it shows:

* signaling: both providers find each other through ``ws://127.0.0.1:PORT/`` (and
  ``/signaling``) of ``edrys_relay serve``, with a password, i.e. every payload encrypted;
* the signaling traffic each browser sent and received is JSON text with only subscribe/publish/
  ping/pong, every ``publish.data`` decrypts with our :mod:`webrtc_crypto` to an announce or a
  signal (offer/answer/candidate), and no document content ever appears in it;
* data path: each provider holds exactly one open WebRTC connection (data channel open, ICE
  connected over the namespace's veth address), there is no BroadcastChannel peer, and after the
  server is stopped edits still travel both ways.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key

if TYPE_CHECKING:
    from .conftest import RelayProcess

PASSWORD = "password"  # what Edrys-Lite always uses (§5.1)
SYNC_TIMEOUT = 30.0


class Peer:
    """One browser context + page running a WebrtcProvider, with its signaling frames recorded."""

    def __init__(self, name: str, page: Any) -> None:
        self.name = name
        self.page = page
        self.console: list[str] = []
        self.ws_urls: list[str] = []
        self.sent: list[str | bytes] = []
        self.received: list[str | bytes] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        self.ws_urls.append(ws.url)
        ws.on("framesent", lambda payload: self.sent.append(payload))
        ws.on("framereceived", lambda payload: self.received.append(payload))

    async def call(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.call("() => edrysTest.state()")
        return state

    async def map(self) -> dict[str, Any]:
        value: dict[str, Any] = await self.call("() => edrysTest.map()")
        return value


async def diagnostics(peers: list[Peer], server: RelayProcess) -> str:
    lines = []
    for peer in peers:
        try:
            state = await peer.state()
            content = await peer.map()
        except Exception as exc:  # diagnostics must not mask the real failure
            state, content = {"error": repr(exc)}, {}
        lines.append(f"--- peer {peer.name}: state={json.dumps(state)} map={content}")
        lines.append(f"    ws={peer.ws_urls} sent={len(peer.sent)} received={len(peer.received)}")
        lines.extend(f"    console {line}" for line in peer.console[-30:])
    lines.append("--- server log:\n" + server.log()[-4000:])
    return "\n".join(lines)


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    peers: list[Peer],
    server: RelayProcess,
    seconds: float = SYNC_TIMEOUT,
) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{await diagnostics(peers, server)}")
        await asyncio.sleep(0.1)


def signaling_messages(frames: list[str | bytes]) -> list[dict[str, Any]]:
    """Parse recorded signaling frames; every one must be a JSON text frame with an object."""
    messages = []
    for frame in frames:
        assert isinstance(frame, str), f"binary signaling frame: {frame!r}"
        message = json.loads(frame)
        assert isinstance(message, dict)
        messages.append(message)
    return messages


@pytest.mark.parametrize("path", ["/", "/signaling"])
async def test_two_chromium_providers_sync_over_webrtc(
    relay_server: RelayProcess, page_url: str, browser: Any, path: str
) -> None:
    room = "AbCdEfGhIjKlMnOp" + uuid.uuid4().hex[:8]
    signaling_url = f"ws://127.0.0.1:{relay_server.port}{path}"
    options = {"room": room, "signaling": [signaling_url], "password": PASSWORD}

    peers: list[Peer] = []
    for name in ("A", "B"):
        # separate contexts: no shared storage, so no BroadcastChannel shortcut between them
        context = await browser.new_context()
        peer = Peer(name, await context.new_page())
        await peer.page.goto(page_url)
        peers.append(peer)
    a, b = peers

    # A edits before B exists; B must get it through the initial WebRTC sync
    await a.call("o => edrysTest.start(o)", options)
    await a.call("() => edrysTest.set('a', 'written by A before B joined')")

    async def a_has_announced() -> bool:
        return any(isinstance(f, str) and '"publish"' in f for f in a.sent)

    # B joins after A's announce went out, as a second member of a class does. Were both
    # announces to cross, each y-webrtc peer would answer the other's with an offer (glare),
    # which y-webrtc 10.3.0 does not always resolve: ICE then stays "new" on both sides.
    await wait_until(a_has_announced, "A's announce", peers, relay_server)
    await b.call("o => edrysTest.start(o)", options)
    await b.call("() => edrysTest.set('b', 'written by B')")

    expected = {"a": "written by A before B joined", "b": "written by B"}

    async def both_have_both() -> bool:
        return await a.map() == expected and await b.map() == expected

    await wait_until(both_have_both, "A and B to sync", peers, relay_server)

    # --- the data path is a WebRTC connection between the two pages
    states = [await peer.state() for peer in peers]
    for peer, state, other_state in ((a, states[0], states[1]), (b, states[1], states[0])):
        info = f"{peer.name}: {state}"
        assert state["bcConns"] == 0, info
        assert len(state["conns"]) == 1, info
        conn = state["conns"][0]
        assert conn["remotePeerId"] == other_state["peerId"], info
        assert conn["connected"] and conn["synced"], info
        assert conn["channelState"] == "open", info
        assert conn["iceConnectionState"] in ("connected", "completed"), info
        assert all(state["signalingConnected"]), info
        pairs = await peer.call("() => edrysTest.selectedPairs()")
        assert len(pairs) == 1, pairs
        # ICE runs over the namespace's private veth address, not loopback or a real interface
        assert pairs[0]["local"]["address"] == "10.233.0.1", pairs
        assert pairs[0]["remote"]["address"] == "10.233.0.1", pairs
        assert pairs[0]["bytesSent"] > 0 and pairs[0]["bytesReceived"] > 0, pairs

    # --- what went through our server is signaling only, encrypted with the room key
    key = derive_key(PASSWORD, room)
    for peer in peers:
        assert peer.ws_urls == [signaling_url], peer.ws_urls
        sent = signaling_messages(peer.sent)
        received = signaling_messages(peer.received)
        assert {m["type"] for m in sent} <= {"subscribe", "unsubscribe", "publish", "ping"}, sent
        assert {m["type"] for m in received} <= {"publish", "pong"}, received
        assert {"type": "subscribe", "topics": [room]} in sent
        inner_types: set[str] = set()
        signal_types: set[str] = set()
        for message in sent + received:
            if message["type"] != "publish":
                continue
            assert message["topic"] == room
            assert isinstance(message["data"], str)  # encrypted: base64 text, never an object
            inner = decrypt(key, message["data"])
            inner_types.add(inner["type"])
            if inner["type"] == "signal":
                signal_types.add(inner["signal"]["type"])
        assert inner_types == {"announce", "signal"}, inner_types
        assert {"offer", "answer"} <= signal_types, signal_types
        everything = "".join(str(f) for f in peer.sent + peer.received)
        assert "written by" not in everything
    # each side received the other's messages through the server
    assert any("publish" in str(f) for f in a.received)
    assert any("publish" in str(f) for f in b.received)

    # --- without the server, edits still flow both ways: the document never needed it
    relay_server.stop()

    async def signaling_down() -> bool:
        return not any((await a.state())["signalingConnected"]) and not any(
            (await b.state())["signalingConnected"]
        )

    await wait_until(signaling_down, "both signaling sockets to close", peers, relay_server)
    await a.call("() => edrysTest.set('c', 'A after the server stopped')")
    await b.call("() => edrysTest.set('d', 'B after the server stopped')")
    expected |= {"c": "A after the server stopped", "d": "B after the server stopped"}
    await wait_until(both_have_both, "A and B to sync without the server", peers, relay_server)
    for peer in peers:
        assert (await peer.state())["conns"][0]["connected"]
