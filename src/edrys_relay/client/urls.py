"""What people type as a server address, turned into the ``ws://`` / ``wss://`` URL we connect to.

``HOST:PORT`` means ``ws://HOST:PORT``, and ``http(s)://`` (what a browser's address bar shows for
the same server) means ``ws(s)://``: one port serves HTTP and WebSocket, so the mapping is exact.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
EXPECTED = "ws://HOST:PORT, wss://HOST:PORT, http(s)://HOST:PORT or HOST:PORT"


def server_url(text: str) -> str:
    """``text`` as a ``ws://`` or ``wss://`` URL without a trailing slash, query or fragment.

    Raises:
        ValueError: not a server address; the message says what is expected.
    """
    scheme, parts = _parse(text)
    if parts.query or parts.fragment or text.strip().endswith(("?", "#")):
        raise ValueError(f"{text.strip()!r}: a server address has no '?' or '#' part")
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def signaling_url(text: str) -> str:
    """``text`` as the ``ws://`` or ``wss://`` URL of a signaling server, used as given otherwise
    (y-webrtc does): an empty path becomes ``/``, a query such as ``?token=`` is kept.

    Raises:
        ValueError: not a server address, or it has a fragment.
    """
    scheme, parts = _parse(text)
    if parts.fragment:
        raise ValueError(f"{text.strip()!r}: a signaling URL has no '#' part")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{parts.path or '/'}{query}"


def _parse(text: str) -> tuple[str, SplitResult]:
    given = text.strip()
    if not given:
        raise ValueError(f"no server address given: expected {EXPECTED}")
    parts = urlsplit(given if "://" in given else f"ws://{given}")
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"{given!r} is not a server address: expected {EXPECTED}")
    if not parts.hostname:
        raise ValueError(f"{given!r} names no host: expected {EXPECTED}")
    try:
        parts.port  # noqa: B018 - the property validates the port
    except ValueError:
        raise ValueError(f"{given!r} has no valid port number: expected {EXPECTED}") from None
    return scheme, parts


__all__ = ["EXPECTED", "server_url", "signaling_url"]
