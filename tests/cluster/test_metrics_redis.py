"""``/metrics`` in Redis mode (docs/operations.md): commits are XADD pipelines, the read loop's
entries are counted, and the stream lag gauge is the age of the newest entry read."""

from __future__ import annotations

import time

from edrys_relay.cluster.bus import RedisBus
from edrys_relay.config import Settings
from edrys_relay.protocol import yjs
from tests.cluster.redisproc import RedisProcess
from tests.conftest import StartRelay, open_ws, recv_until
from tests.server.opskit import Samples, http_get, parse_metrics, value
from tests.server.ydata import text_updates

ROOM = "redis-metrics-Qx7"


async def scrape(port: int) -> Samples:
    reply = await http_get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status == 200
    text = reply.body.decode()
    assert ROOM not in text
    return parse_metrics(text)


async def test_two_nodes_count_appends_reads_and_stream_lag(
    redis_server: RedisProcess, start_relay: StartRelay
) -> None:
    a = await start_relay(redis_url=redis_server.url)
    b = await start_relay(redis_url=redis_server.url)
    frame = yjs.encode_sync_update(text_updates("across nodes")[0])
    async with await open_ws(a, f"/{ROOM}") as writer, await open_ws(b, f"/{ROOM}") as reader:
        await writer.recv()
        await reader.recv()
        await writer.send(frame)
        await recv_until(reader, lambda m: m == frame, timeout=10)
        on_a, on_b = await scrape(a.port), await scrape(b.port)
        assert value(on_a, "edrys_relay_store_updates_committed_total") == 1
        assert value(on_a, "edrys_relay_store_commit_seconds_count") >= 1  # XADD pipelines
        assert value(on_b, "edrys_relay_store_updates_committed_total") == 0
        assert value(on_b, "edrys_relay_redis_entries_read_total") >= 1
        for node in (on_a, on_b):
            assert value(node, "edrys_relay_redis_errors_total", operation="read") == 0

        assert value(on_b, "edrys_relay_redis_stream_lag_seconds") >= 0


def test_stream_lag_is_the_age_of_the_newest_entry_read() -> None:
    bus = RedisBus(Settings(), "redis://127.0.0.1:1/0")  # never connects
    now_ms = int(time.time() * 1000)
    reply = [
        (b"edrys:log:a", [(b"%d-0" % (now_ms - 9000), {}), (b"%d-3" % (now_ms - 4000), {})]),
        (b"edrys:log:b", [(b"%d-0" % (now_ms - 6000), {})]),
    ]
    bus._note_lag(reply)
    assert 4.0 <= bus.redis_stats.read_lag_seconds < 9.0
    bus._note_lag(None)  # a read that found nothing new: caught up
    assert bus.redis_stats.read_lag_seconds == 0.0
