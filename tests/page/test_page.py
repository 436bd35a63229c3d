"""The classroom page in a real browser (issue 8): both modes, switching, links, Auto."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from .helpers import (
    NETNS_HOST,
    WAIT_MS,
    classroom_id,
    comm_of,
    debug,
    edrys_comm,
    edrys_decode,
    open_member,
    run_in_netns,
    running_server,
    ws_origin,
)

expect = pytest.importorskip("playwright.sync_api").expect


def _see_each_other(a: Any, b: Any) -> None:
    """Members, chat and notes flow both ways between two pages."""
    for page in (a, b):
        expect(page.locator("#members")).to_contain_text("Ada", timeout=WAIT_MS)
        expect(page.locator("#members")).to_contain_text("Bob", timeout=WAIT_MS)
    a.fill("#chat-input", "hello from Ada")
    a.press("#chat-input", "Enter")
    expect(b.locator("#chat")).to_contain_text("hello from Ada", timeout=WAIT_MS)
    b.fill("#notes", "notes by Bob")
    expect(a.locator("#notes")).to_have_value("notes by Bob", timeout=WAIT_MS)


def _close(*pages: Any) -> None:
    """Close the members' contexts; the pages must not have thrown uncaught errors."""
    errors = [error for page in pages for error in page.errors]
    for page in pages:
        page.context.close()
    assert not errors, errors


def test_websocket_mode_members_chat_notes(server: str, browser: Any) -> None:
    room = classroom_id()
    comm = edrys_comm({"m": "Websocket", "w": ws_origin(server)})
    url = f"{server}/?/classroom/{room}#comm={comm}"
    a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
    try:
        _see_each_other(a, b)
        for page in (a, b):
            state = debug(page)
            assert state["transport"] == "websocket"
            assert f"{ws_origin(server)}/{room}" in page.sockets
            expect(page.locator("#members")).to_contain_text("WebSocket · connected")
    finally:
        _close(a, b)


def _webrtc_mode(server: str, browser: Any) -> None:
    room = classroom_id()
    origin = ws_origin(server)
    comm = edrys_comm({"m": "WebRTC", "w": origin, "s": [origin]})
    url = f"{server}/?/classroom/{room}#comm={comm}"
    a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
    try:
        _see_each_other(a, b)
        for page in (a, b):
            page.wait_for_function("edrysPage.session.stats.dataChannelsOpened >= 1")
            state = debug(page)
            assert state["transport"] == "webrtc"
            # the Yjs WebSocket door of the server was never used: only signaling
            assert state["websocketDoorOpened"] == 0, state
            assert page.sockets and all(urlsplit(u).path in ("", "/") for u in page.sockets)
            framed = page.evaluate("edrysPage.session.stats.bytesIn")
            assert framed > 0
        # and the server agrees: two signaling sockets, no Yjs room, no Yjs connection
        health = json.loads(urllib.request.urlopen(f"{server}/healthz", timeout=5).read())
        assert health["connections"]["yjs"] == 0, health
        assert health["rooms"] == 0, health
        assert health["connections"]["signaling"] == 2, health
    finally:
        _close(a, b)


def test_webrtc_mode_over_data_channel(request: pytest.FixtureRequest) -> None:
    run_in_netns(request, _webrtc_mode)


def _both_modes_in_one_room(server: str, browser: Any) -> None:
    """With the bridge, a member in WebRTC mode and one in WebSocket mode share the room."""
    room = classroom_id()
    origin = ws_origin(server)
    rtc = f"{server}/?/classroom/{room}#comm=" + edrys_comm({"m": "WebRTC", "s": [origin]})
    ws = f"{server}/?/classroom/{room}#comm=" + edrys_comm({"m": "Websocket", "w": origin})
    a, b = open_member(browser, rtc, "Ada"), open_member(browser, ws, "Bob")
    try:
        _see_each_other(a, b)
        a.wait_for_function("edrysPage.session.stats.dataChannelsOpened >= 1")
        state_a, state_b = debug(a), debug(b)
        assert state_a["transport"] == "webrtc" and state_a["websocketDoorOpened"] == 0, state_a
        assert state_b["transport"] == "websocket", state_b
        health = json.loads(urllib.request.urlopen(f"{server}/healthz", timeout=5).read())
        assert health["bridge"]["peers"] == 1, health
    finally:
        _close(a, b)


def test_webrtc_and_websocket_members_share_a_bridged_room(request: pytest.FixtureRequest) -> None:
    run_in_netns(request, _both_modes_in_one_room, server_flags=("--bridge-webrtc",))


def _switch_keeps_document(server: str, browser: Any) -> None:
    room = classroom_id()
    origin = ws_origin(server)
    url = f"{server}/?/classroom/{room}#comm=" + edrys_comm({"m": "Websocket", "w": origin})
    a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
    try:
        _see_each_other(a, b)
        before = comm_of(a)
        for page in (a, b):
            page.click("label[for=m-webrtc]")
        for page in (a, b):
            expect(page.locator("#st-transport")).to_contain_text("WebRTC", timeout=WAIT_MS)
            expect(page.locator("#st-peers")).to_have_text("1", timeout=WAIT_MS)
        after = comm_of(a)
        assert after != before
        assert edrys_decode(after) == {"m": "WebRTC", "w": origin, "s": [origin]}
        assert edrys_decode(before) == {"m": "Websocket", "w": origin, "s": [origin]}
        for page in (a, b):  # the document survived the switch
            expect(page.locator("#chat")).to_contain_text("hello from Ada")
            expect(page.locator("#notes")).to_have_value("notes by Bob")
        b.fill("#chat-input", "now over WebRTC")
        b.press("#chat-input", "Enter")
        expect(a.locator("#chat")).to_contain_text("now over WebRTC", timeout=WAIT_MS)
        for page in (a, b):
            page.click("label[for=m-websocket]")
        for page in (a, b):
            expect(page.locator("#st-transport")).to_contain_text("WebSocket", timeout=WAIT_MS)
            expect(page.locator("#members")).to_contain_text("Ada", timeout=WAIT_MS)
            expect(page.locator("#members")).to_contain_text("Bob", timeout=WAIT_MS)
        assert edrys_decode(comm_of(a)) == {"m": "Websocket", "w": origin, "s": [origin]}
        expect(a.locator("#chat")).to_contain_text("now over WebRTC")
        expect(a.locator("#notes")).to_have_value("notes by Bob")
    finally:
        _close(a, b)


def test_switching_mode_keeps_chat_and_notes(request: pytest.FixtureRequest) -> None:
    run_in_netns(request, _switch_keeps_document)


def test_copied_link_opens_same_classroom_and_mode(server: str, browser: Any) -> None:
    room = classroom_id()
    origin = ws_origin(server)
    url = f"{server}/?/classroom/{room}#comm=" + edrys_comm({"m": "Websocket", "w": origin})
    a = open_member(browser, url, "Ada")
    try:
        a.context.grant_permissions(["clipboard-read", "clipboard-write"])
        a.click("#copy-link")
        expect(a.locator("#copy-note")).to_contain_text("copied")
        link = a.evaluate("navigator.clipboard.readText()")
        assert link == a.input_value("#link") == a.url
        assert f"?/classroom/{room}#comm=" in link
        b = open_member(browser, link, "Bob")
        try:
            expect(b.locator("#room-id")).to_have_text(room)
            expect(b.locator("#m-websocket")).to_be_checked()
            assert debug(b)["transport"] == "websocket"
            expect(b.locator("#members")).to_contain_text("Ada", timeout=WAIT_MS)
        finally:
            _close(b)
    finally:
        _close(a)


@pytest.mark.parametrize(
    ("short", "method", "signaling_path"),
    [
        ({"m": "Websocket", "w": "ORIGIN"}, "m-websocket", ""),
        ("ws", "m-websocket", ""),  # Edrys-Lite's shorthand: WebSocket on the default server
        ({"m": "WebRTC", "s": ["ORIGIN/signaling"]}, "m-webrtc", "/signaling"),
    ],
)
def test_edrys_made_comm_selects_mode_and_server(
    server: str, browser: Any, short: Any, method: str, signaling_path: str
) -> None:
    """A #comm= value made with npm lz-string, as Edrys-Lite makes it, selects mode and server."""
    origin = ws_origin(server)
    if isinstance(short, dict):
        text = json.dumps(short).replace("ORIGIN", origin)
        short = edrys_comm(json.loads(text))
    page = open_member(browser, f"{server}/?/classroom/{classroom_id()}#comm={short}", "Ada")
    try:
        expect(page.locator(f"#{method}")).to_be_checked()
        expect(page.locator("#ws-url")).to_have_value(origin)
        expect(page.locator("#sig-url")).to_have_value(origin + signaling_path)
        if method == "m-webrtc":
            # it talks to the configured signaling URL, never to the Yjs WebSocket door
            page.wait_for_function("edrysPage.session.provider.signalingConns[0].connected")
            assert f"{origin}/signaling" in page.sockets
            assert debug(page)["websocketDoorOpened"] == 0
        else:
            expect(page.locator("#st-status")).to_have_text("connected", timeout=WAIT_MS)
    finally:
        _close(page)


def _auto_falls_back(server: str, browser: Any) -> None:
    room = classroom_id()
    origin = ws_origin(server)
    no_path = {"iceTransportPolicy": "relay", "iceServers": []}  # relay only, but no TURN
    comm = edrys_comm({"m": "WebRTC", "w": origin, "c": no_path, "s": [origin], "a": 1})
    url = f"{server}/?/classroom/{room}#comm={comm}"
    a = open_member(browser, url, "Ada", auto_timeout_ms=4000)
    b = open_member(browser, url, "Bob", auto_timeout_ms=4000)
    try:
        expect(a.locator("#m-auto")).to_be_checked()
        for page in (a, b):
            expect(page.locator("#st-transport")).to_have_text(
                "Auto → WebSocket (this server)", timeout=WAIT_MS
            )
            expect(page.locator("#fallback-note")).to_contain_text("no direct WebRTC connection")
        _see_each_other(a, b)
        assert all(debug(p)["dataChannelsOpened"] == 0 for p in (a, b))
        # a late member in Auto finds the others on the WebSocket server and joins them there
        c = open_member(browser, url, "Carol", auto_timeout_ms=60_000)
        try:
            expect(c.locator("#fallback-note")).to_contain_text(
                "already on the WebSocket server", timeout=WAIT_MS
            )
            expect(c.locator("#notes")).to_have_value("notes by Bob", timeout=WAIT_MS)
            expect(a.locator("#members")).to_contain_text("Carol", timeout=WAIT_MS)
        finally:
            _close(c)
    finally:
        _close(a, b)


def test_auto_falls_back_to_websocket_when_ice_fails(request: pytest.FixtureRequest) -> None:
    run_in_netns(request, _auto_falls_back)


def _has_stream_door(server: str) -> bool:
    """True when the server answers on /stream with the relay's `info` greeting."""
    from websockets.sync.client import connect

    try:
        with connect(ws_origin(server) + "/stream", open_timeout=3) as ws:
            return json.loads(ws.recv(timeout=3)).get("type") == "info"
    except Exception:
        return False


def test_stream_viewer_shows_frames_of_this_classroom(server: str, browser: Any) -> None:
    if not _has_stream_door(server):
        pytest.skip("this server has no /stream door yet")
    room = classroom_id()
    url = f"{server}/?/classroom/{room}#comm=" + edrys_comm(
        {"m": "Websocket", "w": ws_origin(server)}
    )
    a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
    try:
        b.click("#stream-toggle")
        a.click("#stream-test")  # the page's own small /stream source
        b.wait_for_function("edrysPage.viewer.state === 'live'", timeout=WAIT_MS)
        assert b.get_attribute("#stream-img", "src").startswith("data:image/jpeg;base64,")
        other = open_member(browser, url.replace(room, classroom_id()), "Eve")
        try:
            other.click("#stream-toggle")
            other.wait_for_timeout(1500)
            assert other.evaluate("edrysPage.viewer.frames") == 0  # another classroom, no frames
        finally:
            _close(other)
    finally:
        _close(a, b)


def _insecure_page(_server: str, browser: Any) -> None:
    # http:// on a non-loopback address is not a secure context: no WebCrypto, so no
    # encrypted WebRTC signaling. Auto must say so and use WebSocket at once.
    with running_server(host=NETNS_HOST) as server:
        origin = ws_origin(server)
        url = f"{server}/?/classroom/{classroom_id()}#comm=" + edrys_comm(
            {"m": "WebRTC", "w": origin, "s": [origin], "a": 1}
        )
        a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
        try:
            assert a.evaluate("window.isSecureContext") is False
            expect(a.locator("#fallback-note")).to_contain_text("not on https or localhost")
            _see_each_other(a, b)
            a.click("label[for=m-webrtc]")
            expect(a.locator("#fallback-note")).to_contain_text("WebRTC is not available")
            expect(a.locator("#st-status")).to_have_text("unavailable")
        finally:
            _close(a, b)


def test_auto_uses_websocket_at_once_without_a_secure_context(
    request: pytest.FixtureRequest,
) -> None:
    run_in_netns(request, _insecure_page)


def _python_peer_meets_the_page(server: str, browser: Any) -> None:
    """An independent implementation of the fork's framing and crypto (edrys_relay.client)."""
    pycrdt = pytest.importorskip("pycrdt")
    client = pytest.importorskip("edrys_relay.client")
    webrtc = pytest.importorskip("edrys_relay.client.webrtc")
    room = classroom_id()
    origin = ws_origin(server)
    url = f"{server}/?/classroom/{room}#comm=" + edrys_comm(
        {"m": "WebRTC", "w": origin, "s": [origin]}
    )
    page = open_member(browser, url, "Ada")
    done, stop, errors = threading.Event(), threading.Event(), []
    verified: dict[str, str] = {}

    async def peer() -> None:
        async with client.Classroom(origin, room, transport="webrtc") as classroom:
            presence = {"user": {"name": "Pyro", "mode": "WebRTC", "state": "connected"}}
            classroom.set_presence(presence)
            async with asyncio.timeout(30):
                await classroom.wait_synced()
            notes = classroom.doc.get("relayNotes", type=pycrdt.Text)
            notes.insert(len(notes), "written in Python")
            chat = classroom.doc.get("relayChat", type=pycrdt.Array)
            async with asyncio.timeout(30):
                while not any(entry.get("text") == "hi Pyro" for entry in chat.to_py()):
                    await asyncio.sleep(0.05)
            rtc = classroom._active  # the page's 43 and 44 (Edrys-Lite's identity) verify here
            assert isinstance(rtc, webrtc.WebRtcTransport), rtc
            async with asyncio.timeout(30):
                while not rtc.verified_users():
                    await asyncio.sleep(0.05)
            verified.update(rtc.verified_users())
            done.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def run() -> None:
        try:
            asyncio.run(peer())
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        expect(page.locator("#members")).to_contain_text("Pyro", timeout=WAIT_MS)
        expect(page.locator("#notes")).to_have_value("written in Python", timeout=WAIT_MS)
        page.fill("#chat-input", "hi Pyro")
        page.press("#chat-input", "Enter")
        assert done.wait(40) and not errors, errors
        state = debug(page)
        assert state["dataChannelsOpened"] >= 1 and state["websocketDoorOpened"] == 0, state
        assert re.fullmatch(r"[A-Za-z0-9+/]{87}=_[A-Za-z0-9]{6}", state["userId"]), state
        assert list(verified.values()) == [state["userId"]], (verified, state)
    finally:
        stop.set()
        thread.join(10)
        _close(page)


def test_python_webrtc_peer_meets_the_page(request: pytest.FixtureRequest) -> None:
    run_in_netns(request, _python_peer_meets_the_page)


def test_edrys_websocket_member_appears_with_its_display_name(server: str, browser: Any) -> None:
    """An Edrys-Lite-like member: peer id in awareness, display name in the `users` map."""
    pycrdt = pytest.importorskip("pycrdt")
    from websockets.sync.client import connect

    from edrys_relay.protocol.awareness import AwarenessEntry, encode_awareness_update
    from edrys_relay.protocol.yjs import encode_awareness, encode_sync_update

    room = classroom_id()
    origin = ws_origin(server)
    url = f"{server}/?/classroom/{room}#comm=" + edrys_comm({"m": "Websocket", "w": origin})
    page = open_member(browser, url, "Ada")
    peer_id = "B" * 87 + "=_x1Y2z3"
    doc: Any = pycrdt.Doc()
    users = doc.get("users", type=pycrdt.Map)
    users[peer_id] = pycrdt.Map({"displayName": "Edda", "room": "Lobby", "role": "student"})
    user = {"id": peer_id, "publicKey": "B" * 87 + "=", "signature": "c2ln", "heartbeat": 1}
    try:
        with connect(f"{origin}/{room}?userid=x", open_timeout=5) as ws:
            ws.send(encode_sync_update(doc.get_update()))
            state = json.dumps({"user": user}, separators=(",", ":"))
            ws.send(encode_awareness(encode_awareness_update([AwarenessEntry(4242, 1, state)])))
            expect(page.locator("#members")).to_contain_text("Edda", timeout=WAIT_MS)
        expect(page.locator("#members")).not_to_contain_text("Edda", timeout=WAIT_MS)
    finally:
        _close(page)


def test_controls_are_labelled_and_fit_a_small_phone(server: str, browser: Any) -> None:
    url = f"{server}/?/classroom/{classroom_id()}#comm=ws"
    page = open_member(browser, url, "Ada")
    try:
        unlabelled = page.evaluate(
            "[...document.querySelectorAll('input, textarea, select')]"
            ".filter(e => !e.labels.length).map(e => e.id)"
        )
        assert unlabelled == []
        assert page.evaluate(
            "[...document.querySelectorAll('button')].every(b => b.textContent.trim())"
        )
        page.set_viewport_size({"width": 320, "height": 640})
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        page.focus("#name")
        reached = set()
        for _ in range(20):  # the keyboard reaches every control, in reading order
            page.keyboard.press("Tab")
            reached.add(page.evaluate("document.activeElement.id"))
        wanted = {"copy-link", "chat-input", "notes", "stream-toggle", "m-websocket", "ws-url"}
        assert wanted | {"sig-url", "ice", "check-button"} <= reached, reached
    finally:
        _close(page)
