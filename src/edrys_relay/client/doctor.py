"""Checks behind ``edrys-relay doctor``: is each door of a server usable, and which mode to use.

Each check returns a :class:`Check`; :func:`diagnose` runs them all and :func:`verdict` turns them
into one line per communication mode plus a recommendation. Nothing here prints.

The WebRTC check runs two peers on this machine. It shows that the server's signaling carries
their offers and answers and that a data channel opens here; it cannot show that peers on other
networks reach each other (that needs a direct path between them, or STUN/TURN), and it cannot
run at all on a machine whose only interface is loopback (WebRTC stacks gather no loopback
candidates), which it then says instead of failing.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import pycrdt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.client.options import ClientOptions
from edrys_relay.client.urls import server_url as parse_server_url
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.yjs import (
    EMPTY_STATE_VECTOR,
    SyncStep1,
    SyncStep2,
    decode_message,
    encode_sync_step1,
)

_NETWORK_ERRORS = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ProtocolError)
WEBRTC = "WebRTC data channel"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None
    """None: not checked, and ``detail`` says why."""
    detail: str


def http_url(server_url: str) -> str:
    """``ws://h:p`` → ``http://h:p`` (and ``wss`` → ``https``), without a trailing slash."""
    url = server_url.rstrip("/")
    if url.startswith("ws"):
        url = "http" + url[2:]
    return url


async def check_http(server_url: str, seconds: float) -> Check:
    url = http_url(server_url) + "/healthz"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=seconds) as response:
            return f"{response.status} {response.headers.get('Content-Type', '')}".strip()

    try:
        return Check("HTTP", True, f"GET {url}: {await asyncio.to_thread(get)}")
    except urllib.error.HTTPError as exc:
        return Check("HTTP", exc.code < 500, f"GET {url}: {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Check("HTTP", False, f"GET {url}: {exc}")


async def check_yjs(server_url: str, seconds: float) -> Check:
    """The y-websocket door sends sync step 1 on open and answers our step 1 with step 2."""
    url = f"{server_url.rstrip('/')}/doctor-{uuid.uuid4().hex[:12]}"
    try:
        async with asyncio.timeout(seconds), connect(url, compression=None) as ws:
            await ws.send(encode_sync_step1(EMPTY_STATE_VECTOR))
            seen: set[type] = set()
            while not {SyncStep1, SyncStep2} <= seen:
                frame = await ws.recv()
                if isinstance(frame, bytes):
                    seen.add(type(decode_message(frame)))
        return Check("Yjs door", True, f"{url}: sync step 1 and step 2 received")
    except _NETWORK_ERRORS as exc:
        return Check("Yjs door", False, f"{url}: {exc or type(exc).__name__}")


async def check_signaling(server_url: str, seconds: float) -> Check:
    """The signaling door answers ping with pong and delivers a publish to its subscriber."""
    url = server_url.rstrip("/") + "/"
    topic = f"doctor-{uuid.uuid4().hex[:12]}"
    try:
        async with asyncio.timeout(seconds), connect(url, compression=None) as ws:
            await ws.send('{"type":"ping"}')
            await ws.send(json.dumps({"type": "subscribe", "topics": [topic]}))
            await ws.send(json.dumps({"type": "publish", "topic": topic, "data": "hello"}))
            seen: set[str] = set()
            while not {"pong", "publish"} <= seen:
                message = json.loads(await ws.recv())
                seen.add(message.get("type"))
        return Check("signaling door", True, f"{url}: pong and publish received")
    except (*_NETWORK_ERRORS, ValueError, AttributeError) as exc:
        return Check("signaling door", False, f"{url}: {exc or type(exc).__name__}")


async def check_stream(server_url: str, seconds: float) -> Check:
    """The ``/stream`` door answers a JSON ping (or greets with info)."""
    url = server_url.rstrip("/") + "/stream"
    try:
        async with asyncio.timeout(seconds), connect(url, compression=None) as ws:
            await ws.send('{"type":"ping","timestamp":0}')
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") in ("pong", "info"):
                    return Check("stream door", True, f"{url}: {message['type']} received")
    except (*_NETWORK_ERRORS, ValueError, AttributeError) as exc:
        return Check("stream door", False, f"{url}: {exc or type(exc).__name__}")


async def check_webrtc(server_url: str, seconds: float, options: ClientOptions) -> Check:
    """Two peers on this machine meet through this signaling; a change crosses their channel."""
    from edrys_relay.client.classroom import Classroom

    if not await has_ice_candidates():
        reason = "not checked: this machine has no network interface but loopback, which WebRTC"
        return Check(WEBRTC, None, f"{reason} does not use")
    room = f"doctor-{uuid.uuid4().hex[:12]}"
    try:
        async with (
            Classroom(server_url, room, transport="webrtc", options=options) as a,
            Classroom(server_url, room, transport="webrtc", options=options) as b,
            asyncio.timeout(seconds),
        ):
            changed = asyncio.Event()
            seen = b.doc.get("doctor", type=pycrdt.Map)
            seen.observe(lambda _event: changed.set())
            a.doc.get("doctor", type=pycrdt.Map)["probe"] = room
            while seen.get("probe") != room:
                await changed.wait()
                changed.clear()
        detail = "two peers on this machine synced a change over a data channel"
        return Check(WEBRTC, True, detail)
    except TimeoutError:
        detail = f"two peers on this machine opened no data channel within {seconds}s"
        return Check(WEBRTC, False, detail)
    except _NETWORK_ERRORS as exc:
        return Check(WEBRTC, False, str(exc) or type(exc).__name__)


async def has_ice_candidates() -> bool:
    """Whether WebRTC finds an address to offer here: a data-channel offer with host candidates."""
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        pc.createDataChannel("probe")
        await pc.setLocalDescription(await pc.createOffer())
        return "a=candidate:" in pc.localDescription.sdp
    finally:
        await pc.close()


async def diagnose(
    server_url: str, *, seconds: float = 10.0, webrtc: bool = True, options: ClientOptions
) -> list[Check]:
    """Run every check against ``server_url`` (as :func:`~edrys_relay.client.urls.server_url`
    reads it; a bad one raises ``ValueError``)."""
    url = parse_server_url(server_url)
    checks = [
        await check_http(url, seconds),
        await check_yjs(url, seconds),
        await check_signaling(url, seconds),
        await check_stream(url, seconds),
    ]
    if webrtc and not checks[2].ok:
        checks.append(Check(WEBRTC, None, "not checked: the signaling door failed"))
    elif webrtc:
        checks.append(await check_webrtc(url, 2 * seconds, options))
    return checks


def verdict(checks: list[Check]) -> tuple[dict[str, str], str]:
    """Per-mode verdicts and a recommendation."""
    ok = {check.name: check.ok for check in checks}
    websocket_ok = ok.get("Yjs door", False)
    signaling_ok = ok.get("signaling door", False)
    channel_ok = ok.get(WEBRTC)
    modes = {
        "Websocket mode": "works" if websocket_ok else "does not work (Yjs door failed)",
        "WebRTC mode": _webrtc_verdict(bool(signaling_ok), channel_ok),
        "video streams": "work" if ok.get("stream door") else "do not work (/stream door failed)",
    }
    if websocket_ok and signaling_ok and channel_ok:
        advice = (
            "both modes work from here; transport='auto' uses WebRTC where peers reach each other"
            " and Websocket mode where they do not"
        )
    elif signaling_ok and channel_ok:
        advice = "use WebRTC mode (transport='webrtc'); Websocket mode does not work"
    elif websocket_ok and signaling_ok and channel_ok is None:
        advice = "Websocket mode works; WebRTC signaling works, its data channel was not checked"
    elif websocket_ok:
        advice = "use Websocket mode (transport='websocket')"
    else:
        advice = "the server is not usable from here: check the URL, firewall and TLS"
    return modes, advice


def _webrtc_verdict(signaling_ok: bool, channel_ok: bool | None) -> str:
    if not signaling_ok:
        return "does not work (signaling door failed)"
    if channel_ok is None:
        return "signaling works; data channel not checked"
    if not channel_ok:
        return (
            "signaling works, but two peers on this machine opened no data channel"
            " (a firewall here may block UDP)"
        )
    return (
        "signaling works, and a data channel opened between two peers on this machine; peers on"
        " other networks also need a direct path or STUN/TURN"
    )


__all__ = ["WEBRTC", "Check", "diagnose", "has_ice_candidates", "http_url", "verdict"]
