"""Issue 18's check: ``serve --log-format json`` with three stock clients connected. ``/metrics``
is text/plain in valid exposition format with ``edrys_relay_*`` samples whose connection gauges
sum to at least 3, and names no room; every log line is JSON and names no room or token."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.interop.node_agent import NodeAgent
from tests.server.opskit import http_get, json_log, parse_metrics, total
from tests.server.relayproc import RelayProcess, free_port

ROOM = "Physik-Lab-4c-7Hq2"
TOKEN = "v1.abcdef01.not-a-real-token-9f8e7d"


async def test_metrics_and_json_logs_with_three_stock_clients(tmp_path: Path) -> None:
    relay = RelayProcess(free_port(), tmp_path / "data", "--log-format=json")
    await relay.start()
    agent = await NodeAgent.start("js/ops_agent.mjs")
    try:
        # a token in the URL (ignored: access control is off) must not reach the logs either
        await agent.call("open_yjs", name="a", url=relay.url, room=ROOM, params={"token": TOKEN})
        await agent.call("open_yjs", name="b", url=relay.url, room=ROOM)
        await agent.call("open_signaling", name="s", url=f"{relay.url}/?token={TOKEN}")
        for name in ("a", "b"):
            await agent.until("yjs_stats", lambda s: s["synced"], name=name)
        await agent.until("signal_stats", lambda s: s["connected"], name="s")
        subscribe = {"type": "subscribe", "topics": [ROOM]}
        await agent.call("signal_send", name="s", message=subscribe)
        await agent.call("text_insert", name="a", text="Ohmsches Gesetz")
        await agent.until("text_get", "Ohmsches Gesetz", name="b")

        reply = await http_get(f"http://127.0.0.1:{relay.port}/metrics")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.body.decode()
        samples = parse_metrics(text)  # raises on anything that is not valid exposition
        assert sum(name.startswith("edrys_relay_") for name, _ in samples) >= 40
        assert total(samples, "edrys_relay_connections") >= 3
        assert total(samples, "edrys_relay_store_updates_committed_total") >= 1
        assert ROOM not in text and TOKEN not in text
    finally:
        await agent.close()
        assert await relay.signal(signal.SIGTERM) == 0

    log = tmp_path / "server-1.log"
    records = json_log(log)  # fails on any line that is not a JSON object
    assert {"time", "level", "event", "logger", "message"} <= set(records[0])
    opened = [r for r in records if r["event"] == "connection.open"]
    assert sorted(r["door"] for r in opened) == ["signaling", "yjs", "yjs"]
    assert all(r["peer"].startswith("127.0.0.1:") and r["client"] == "127.0.0.1" for r in opened)
    assert any(r["event"] == "server.drained" for r in records)
    raw = log.read_text()
    assert ROOM not in raw and TOKEN not in raw and "not-a-real-token" not in raw
