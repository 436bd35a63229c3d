"""Plain HTTP on the shared port (protocols.md §2.8)."""

import json
import urllib.request

import pytest

from edrys_relay import __version__
from edrys_relay.server.app import RelayServer


def fetch(server: RelayServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return reply.status, dict(reply.headers), reply.read()


@pytest.mark.parametrize("path", ["/some/room", "/stream", "/anything?x=1"])
async def test_unrouted_requests_get_okay_with_cors(relay: RelayServer, path: str) -> None:
    status, headers, body = await _in_thread(fetch, relay, path)
    assert (status, body) == (200, b"okay")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type"


async def test_options_is_204(relay: RelayServer) -> None:
    status, headers, body = await _in_thread(fetch, relay, "/room", "OPTIONS")
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*"


async def test_healthz(relay: RelayServer) -> None:
    status, headers, body = await _in_thread(fetch, relay, "/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["version"] == __version__
    assert health["rooms"] == 0
    assert health["connections"]["total"] == 0
    assert health["uptime_seconds"] >= 0


async def _in_thread(func, *args):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.to_thread(func, *args)
