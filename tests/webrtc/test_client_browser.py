"""Our Python WebRTC peer and stock y-webrtc 10.3.0 peers in headless Chromium.

Runs in a private network namespace (conftest.py), signaling through ``edrys_relay serve`` with a
password (every signaling payload encrypted, protocols.md §4.5). Upstream npm y-webrtc sends
unframed data-channel messages, so the Python peer uses ``framing="plain"`` here.

* edits travel both ways over the data channel;
* fidelity (protocols.md §2.9): a JSON object with non-alphabetical, nested key order written by
  one browser, which then leaves, reaches a second browser from the Python peer alone with an
  identical ``JSON.stringify``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pycrdt
import pytest

from edrys_relay.client import Classroom, ClientOptions
from edrys_relay.protocol.edrys_identity import Identity, challenge_text
from tests.conftest import wait_for

if TYPE_CHECKING:
    from .conftest import RelayProcess

PASSWORD = "password"
TIMEOUT = 30.0
# Setup-like, with enough keys per level that a Yrs re-encoding (random hash order per process)
# would give a different JSON.stringify with near certainty.
SETUP = {
    "name": "Lab",
    "meta": {
        "zeta": 1,
        "logo": "",
        "description": "d",
        "selfAssign": False,
        "defaultNumberOfRooms": 3,
        "alpha": {"y": [3, {"q": 1, "b": 2, "m": 3, "a": 4}], "b": None, "k": "v", "c": 0},
    },
    "modules": [{"url": "u", "config": {"z": 1, "a": 2, "m": 3}, "width": "full", "height": 1}],
    "members": {"teacher": ["t"], "student": [], "station": []},
    "createdBy": "owner",
    "timestamp": 1764115200123,
    "communicationConfig": "ws",
    "id": "AbCdEfGhIjKlMnOp",
}


class BrowserPeer:
    """One browser context running a WebrtcProvider."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    @classmethod
    async def open(cls, browser: Any, url: str) -> BrowserPeer:
        context = await browser.new_context()  # own storage: no BroadcastChannel shortcut
        peer = cls(await context.new_page())
        await peer.page.goto(url)
        return peer

    async def call(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def close(self) -> None:
        await self.page.context.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, peers: list[BrowserPeer]) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not await check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        logs = "\n".join(line for p in peers for line in p.console[-20:])
        pytest.fail(f"timed out waiting for {what}\n{logs}")


def plain_options() -> ClientOptions:
    return ClientOptions(framing="plain", password=PASSWORD)


async def test_python_peer_and_chromium_y_webrtc_edit_both_ways(
    relay_server: RelayProcess, client_page_url: str, browser: Any
) -> None:
    room = "Mixed" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    page = await BrowserPeer.open(browser, client_page_url)
    start = {"room": room, "signaling": [url + "/"], "password": PASSWORD}
    await page.call("o => clientTest.start(o)", start)
    async with Classroom(url, room, transport="webrtc", options=plain_options()) as py:
        shared = py.doc.get("m", type=pycrdt.Map)
        shared["from_python"] = {"b": 1, "a": 2}
        await page.call("() => clientTest.set('from_browser', {z: 1, y: [1, 2]})")

        async def browser_has_python() -> bool:
            content = await page.call("() => clientTest.map()")
            return bool(content.get("from_python") == {"b": 1, "a": 2})

        await until(browser_has_python, "the Python edit in the browser", [page])
        await wait_for(lambda: shared.to_py().get("from_browser") == {"z": 1, "y": [1, 2]}, TIMEOUT)
        async with asyncio.timeout(TIMEOUT):
            await py.wait_synced()

        # upstream y-webrtc answers a type it lacks (42) with an empty message: the link survives
        assert py.send_message({"subject": "hello"}) == 1
        # a later edit each way, over the open connection
        shared["later"] = "python"
        await page.call("() => clientTest.set('later_b', 'browser')")
        await wait_for(lambda: shared.to_py().get("later_b") == "browser", TIMEOUT)

        async def browser_has_later() -> bool:
            return bool((await page.call("() => clientTest.map()")).get("later") == "python")

        await until(browser_has_later, "the later Python edit", [page])
        conns = await page.call("() => clientTest.conns()")
        assert len(conns) == 1 and conns[0]["connected"] and conns[0]["synced"], conns
        assert py.transport == "webrtc"
        links = list(py._active.links.values())  # type: ignore[union-attr]
        assert len(links) == 1 and links[0].open and links[0].encoder is None
        await page.close()


async def test_late_browser_gets_json_key_order_from_python_peer(
    relay_server: RelayProcess, client_page_url: str, browser: Any
) -> None:
    room = "Fidelity" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{relay_server.port}"
    start = {"room": room, "signaling": [url + "/"], "password": PASSWORD}
    writer = await BrowserPeer.open(browser, client_page_url)
    async with Classroom(url, room, transport="webrtc", options=plain_options()) as py:
        shared = py.doc.get("m", type=pycrdt.Map)
        await writer.call("o => clientTest.start(o)", start)
        await writer.call("s => clientTest.set('setup', s)", SETUP)
        original = await writer.call("() => clientTest.stringify('setup')")
        assert original == json.dumps(SETUP, separators=(",", ":")), original
        await wait_for(lambda: shared.to_py().get("setup") == SETUP, TIMEOUT)

        # the writer leaves; only the Python peer holds the document now
        await writer.call("() => clientTest.leave()")
        await writer.close()
        await wait_for(lambda: py._active.link_count == 0, TIMEOUT)  # type: ignore[union-attr]

        reader = await BrowserPeer.open(browser, client_page_url)
        await reader.call("o => clientTest.start(o)", start)

        async def reader_has_setup() -> bool:
            return await reader.call("() => clientTest.stringify('setup')") is not None

        await until(reader_has_setup, "the setup in the late browser", [reader])
        assert await reader.call("() => clientTest.stringify('setup')") == original
        conns = await reader.call("() => clientTest.conns()")
        assert len(conns) == 1 and conns[0]["connected"], conns
        await reader.close()


async def test_chromium_webcrypto_verifies_our_edrys_challenge_signature(
    client_page_url: str, browser: Any
) -> None:
    identity = Identity.generate()
    now_ms = 1_764_115_200_123
    signature = identity.sign_challenge("AbCdEfGhIjKlMnOp", now_ms)
    text = challenge_text("AbCdEfGhIjKlMnOp", now_ms).decode()
    page = await BrowserPeer.open(browser, client_page_url)
    check = {"publicKey": identity.public_key, "signature": signature, "text": text}
    assert await page.call("c => clientTest.verifyChallenge(c)", check) is True
    assert await page.call("c => clientTest.verifyChallenge(c)", {**check, "text": "x"}) is False
    await page.close()
