"""Edrys-Lite's ``#comm=`` link parameter (protocols.md §5.2), encoding direction.

The logical settings use Edrys' short keys: ``m`` method (``Websocket`` or ``WebRTC``), ``w``
WebSocket server URL, ``c`` RTC configuration, ``s`` signaling server list; only the present ones,
in that order, JSON-encoded and LZString-compressed.
"""

from __future__ import annotations

import json
from typing import Any

from edrys_relay.protocol.lzstring import compress_to_encoded_uri_component


def comm_parameter(
    method: str,
    *,
    websocket_url: str | None = None,
    webrtc_config: dict[str, Any] | None = None,
    signaling: list[str] | None = None,
) -> str:
    """The value of ``#comm=`` that selects ``method`` with these servers."""
    if method not in ("Websocket", "WebRTC"):
        raise ValueError(f"unknown communication method {method!r}")
    short: dict[str, Any] = {"m": method}
    if websocket_url:
        short["w"] = websocket_url
    if webrtc_config:
        short["c"] = webrtc_config
    if signaling:
        short["s"] = signaling
    text = json.dumps(short, separators=(",", ":"), ensure_ascii=False)
    return compress_to_encoded_uri_component(text)


__all__ = ["comm_parameter"]
