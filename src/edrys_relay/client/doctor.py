"""Checks behind ``edrys-relay doctor``: is each door of a server usable, and which mode to use.

Each check returns a :class:`Check`; :func:`diagnose` runs them all and :func:`verdict` turns them
into one line per communication mode plus a recommendation. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edrys_relay.client.options import ClientOptions
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.yjs import (
    EMPTY_STATE_VECTOR,
    SyncStep1,
    SyncStep2,
    decode_message,
    encode_sync_step1,
)

_NETWORK_ERRORS = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, ProtocolError)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
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
    """Two local peers find each other through this signaling and sync over a data channel."""
    if importlib.util.find_spec("aiortc") is None:
        reason = "needs aiortc: pip install 'edrys-relay[webrtc]'"
        return Check("WebRTC data channel", False, reason)
    from edrys_relay.client.classroom import Classroom

    room = f"doctor-{uuid.uuid4().hex[:12]}"
    try:
        async with (
            Classroom(server_url, room, transport="webrtc", options=options) as a,
            Classroom(server_url, room, transport="webrtc", options=options) as b,
            asyncio.timeout(seconds),
        ):
            await a.wait_synced()
            await b.wait_synced()
        return Check("WebRTC data channel", True, "two local peers synced over a data channel")
    except TimeoutError:
        return Check("WebRTC data channel", False, f"no data channel within {seconds}s")
    except _NETWORK_ERRORS as exc:
        return Check("WebRTC data channel", False, str(exc) or type(exc).__name__)


async def diagnose(
    server_url: str, *, seconds: float = 10.0, webrtc: bool = True, options: ClientOptions
) -> list[Check]:
    """Run every check against ``server_url`` (``ws://host:port``)."""
    checks = [
        await check_http(server_url, seconds),
        await check_yjs(server_url, seconds),
        await check_signaling(server_url, seconds),
        await check_stream(server_url, seconds),
    ]
    if webrtc:
        checks.append(await check_webrtc(server_url, 2 * seconds, options))
    return checks


def verdict(checks: list[Check]) -> tuple[dict[str, str], str]:
    """Per-mode verdicts and a recommendation."""
    ok = {check.name: check.ok for check in checks}
    websocket_ok = ok.get("Yjs door", False)
    signaling_ok = ok.get("signaling door", False)
    channel_ok = ok.get("WebRTC data channel")
    modes = {
        "Websocket mode": "works" if websocket_ok else "does not work (Yjs door failed)",
        "WebRTC mode": _webrtc_verdict(signaling_ok, channel_ok),
        "video streams": "work" if ok.get("stream door") else "do not work (/stream door failed)",
    }
    if signaling_ok and channel_ok:
        advice = "use WebRTC mode (or transport='auto'); Websocket mode is the fallback"
    elif websocket_ok and signaling_ok and channel_ok is None:
        advice = "Websocket mode works; check the WebRTC data channel before choosing WebRTC"
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
        return "signaling works, but no data channel opened (peers need STUN/TURN)"
    return "works"


__all__ = ["Check", "diagnose", "http_url", "verdict"]
