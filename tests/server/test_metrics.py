"""``GET /metrics`` (docs/operations.md): exact per-door counting, refusals by reason, bounded
labels with no room name, the bearer token, the event-loop lag, and the registration hook."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from websockets.exceptions import InvalidStatus

from edrys_relay.protocol import yjs
from edrys_relay.server.app import DOORS, RelayServer
from tests.conftest import StartRelay, open_ws, recv_until, wait_for
from tests.server.opskit import Samples, http_get, parse_metrics, total, value
from tests.server.streamkit import stream_client
from tests.server.ydata import text_updates

SECRET_ROOM = "maths-7b-Zq83xv"
SECRET = "metrics-test-secret-0123456789"
LABEL_VALUES = {
    "door": set(DOORS),
    "outcome": {"applied", "unchanged", "read_only", "document_limit"},
    "reason": {
        "bad_request",
        "origin",
        "token",
        "capacity",
        "rate_limit",
        "token_expired",
        "storage_busy",
        "topic",
        "stream_room",
        "replaced",
        "rejected",
    },
}


async def scrape(relay: RelayServer, headers: dict[str, str] | None = None) -> Samples:
    reply = await http_get(f"http://127.0.0.1:{relay.port}/metrics", headers)
    assert reply.status == 200, reply
    return parse_metrics(reply.body.decode())


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_each_door_counts_messages_and_bytes_exactly(relay: RelayServer) -> None:
    frame = yjs.encode_sync_update(text_updates("x")[0])
    async with (
        await open_ws(relay, f"/{SECRET_ROOM}") as a,
        await open_ws(relay, f"/{SECRET_ROOM}") as b,
        await open_ws(relay, "/") as alice,
        await open_ws(relay, "/signaling") as bob,
    ):
        await a.recv()
        await b.recv()
        for peer in (alice, bob):
            await peer.send(json.dumps({"type": "subscribe", "topics": [SECRET_ROOM]}))
        await wait_for(lambda: len(relay.topics.topics.get(SECRET_ROOM, ())) == 2)
        viewer, _ = await stream_client(relay)
        before = await scrape(relay)
        assert value(before, "edrys_relay_connections", door="yjs") == 2
        assert value(before, "edrys_relay_connections", door="signaling") == 2
        assert value(before, "edrys_relay_connections", door="stream") == 1
        assert value(before, "edrys_relay_rooms", door="yjs") == 1
        assert value(before, "edrys_relay_rooms", door="signaling") == 1

        await a.send(frame)
        assert await recv_until(b, lambda m: m == frame) == frame
        publish = json.dumps({"type": "publish", "topic": SECRET_ROOM, "data": "offer"})
        await alice.send(publish)
        for peer in (alice, bob):  # the publisher gets it too (y-webrtc server behaviour)
            await recv_until(peer, lambda m: "offer" in m)
        after = await scrape(relay)
        await viewer.close()

    # a client frame of under 126 bytes has a 2-byte header and a 4-byte mask, ours 2 bytes
    assert delta(before, after, "edrys_relay_messages_received_total", door="yjs") == 1
    assert delta(before, after, "edrys_relay_received_bytes_total", door="yjs") == len(frame) + 6
    assert delta(before, after, "edrys_relay_messages_sent_total", door="yjs") == 1
    assert delta(before, after, "edrys_relay_sent_bytes_total", door="yjs") == len(frame) + 2
    assert delta(before, after, "edrys_relay_messages_received_total", door="signaling") == 1
    assert delta(before, after, "edrys_relay_messages_sent_total", door="signaling") == 2
    assert delta(before, after, "edrys_relay_yjs_updates_total", outcome="applied") == 1
    assert delta(before, after, "edrys_relay_store_updates_committed_total") == 1
    assert delta(before, after, "edrys_relay_store_commit_seconds_count") >= 1
    assert value(before, "edrys_relay_messages_sent_total", door="stream") == 1  # info
    assert value(after, "edrys_relay_connections_opened_total", door="yjs") == 2
    # 1 update, 2 subscribes, 1 publish: the scrapes are plain HTTP, no door counts them
    assert total(after, "edrys_relay_messages_received_total") == 4


async def test_refusals_by_reason_and_labels_from_fixed_sets(start_relay: StartRelay) -> None:
    relay = await start_relay(auth_secrets=(SECRET,), allowed_origins=("https://school.example",))
    for path, headers in (
        (f"/{SECRET_ROOM}", {"Origin": "https://evil.example"}),
        (f"/{SECRET_ROOM}?token=forged.token.value.here", {}),
        ("/" + "r" * 300, {}),
    ):
        with pytest.raises(InvalidStatus):
            await open_ws(relay, path, additional_headers=headers)
    reply = await http_get(f"http://127.0.0.1:{relay.port}/metrics")
    text = reply.body.decode()
    samples = parse_metrics(text)
    for reason in ("origin", "token", "bad_request"):
        assert value(samples, "edrys_relay_refusals_total", reason=reason) == 1, reason
    assert total(samples, "edrys_relay_connections_opened_total") == 0
    assert SECRET_ROOM not in text and "forged" not in text and "r" * 300 not in text
    for (name, labels), _ in samples.items():
        if not name.startswith("edrys_relay_"):
            continue
        for key, label in labels:
            if key in ("le", "version"):
                continue
            assert label in LABEL_VALUES[key], (name, key, label)


async def test_bearer_token_guards_metrics_without_cors(start_relay: StartRelay) -> None:
    relay = await start_relay(metrics_token="scrape-me-0123")
    url = f"http://127.0.0.1:{relay.port}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2NyYXBl"}):
        reply = await http_get(url, headers)
        assert reply.status == 401, headers
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"edrys_relay" not in reply.body
    reply = await http_get(url, {"Authorization": "Bearer scrape-me-0123"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert value(parse_metrics(reply.body.decode()), "edrys_relay_build_info", version="0.1.0")
    health = await http_get(f"http://127.0.0.1:{relay.port}/healthz")
    assert health.status == 200 and "Access-Control-Allow-Origin" in health.headers
    openmetrics = await http_get(
        url,
        {"Authorization": "Bearer scrape-me-0123", "Accept": "application/openmetrics-text"},
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.rstrip().endswith(b"# EOF")


async def test_event_loop_lag_sees_a_blocked_loop(start_relay: StartRelay) -> None:
    relay = await start_relay(loop_lag_interval=0.01)
    before = await scrape(relay)
    time.sleep(0.3)  # noqa: ASYNC251 (block the event loop on purpose)
    await asyncio.sleep(0.05)
    after = await scrape(relay)
    # the sample that waited for the blocked loop is at least 0.3 s minus its interval late
    assert delta(before, after, "edrys_relay_event_loop_lag_seconds_sum") >= 0.25
    assert delta(before, after, "edrys_relay_event_loop_lag_seconds_bucket", le="0.25") < delta(
        before, after, "edrys_relay_event_loop_lag_seconds_count"
    )


class StreamLag(Collector):
    """What a cluster bus registers (docs/operations.md "Adding a metric")."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "edrys_relay_cluster_stream_lag_seconds", "test collector", value=self.seconds
        )


async def test_components_register_collectors_read_at_scrape_time(relay: RelayServer) -> None:
    lag = StreamLag()
    relay.metrics.register(lag)
    lag.seconds = 0.25
    assert value(await scrape(relay), "edrys_relay_cluster_stream_lag_seconds") == 0.25
