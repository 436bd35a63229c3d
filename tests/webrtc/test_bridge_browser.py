"""The bridge with npm y-webrtc 10.3.0 in headless Chromium (stock data-channel protocol).

Runs in a private network namespace (conftest.py). A browser and a WebSocket member (our
Python client) edit the same room; after both left, a second browser alone gets the first
one's setup-like JSON from the server with its key order intact (protocols.md §2.9), which
stock Edrys-Lite needs to verify the owner's signature.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay.client import Classroom
from tests.conftest import wait_for

from .test_bridge import TIMEOUT, until_bridged
from .test_client_browser import PASSWORD, SETUP, BrowserPeer, until

if TYPE_CHECKING:
    from .conftest import StartServer


async def test_chromium_peer_websocket_member_and_a_late_browser(
    start_server: StartServer, client_page_url: str, browser: Any
) -> None:
    server = start_server("--bridge-webrtc")
    room = "Chromium" + uuid.uuid4().hex[:8]
    url = f"ws://127.0.0.1:{server.port}"
    start = {"room": room, "signaling": [server.ws_url], "password": PASSWORD}
    writer = await BrowserPeer.open(browser, client_page_url)
    await writer.call("o => clientTest.start(o)", start)
    await writer.call("s => clientTest.set('setup', s)", SETUP)
    original = await writer.call("() => clientTest.stringify('setup')")
    assert original == json.dumps(SETUP, separators=(",", ":")), original
    async with Classroom(url, room, transport="websocket") as ws:
        shared = ws.doc.get("m", type=pycrdt.Map)
        await wait_for(lambda: shared.to_py().get("setup") == SETUP, TIMEOUT)
        shared["from_ws"] = "python"

        async def writer_has_ws_edit() -> bool:
            return bool((await writer.call("() => clientTest.map()")).get("from_ws") == "python")

        await until(writer_has_ws_edit, "the WebSocket edit in the browser", [writer])
        conns = await writer.call("() => clientTest.conns()")
        assert len(conns) == 1 and conns[0]["connected"] and conns[0]["synced"], conns
    await writer.call("() => clientTest.leave()")
    await writer.close()
    await until_bridged(server, 0)

    reader = await BrowserPeer.open(browser, client_page_url)
    await reader.call("o => clientTest.start(o)", start)

    async def reader_has_both() -> bool:
        content = await reader.call("() => clientTest.map()")
        return bool(content.get("from_ws") == "python" and "setup" in content)

    await until(reader_has_both, "both edits in the late browser", [reader])
    assert await reader.call("() => clientTest.stringify('setup')") == original
    await reader.close()
