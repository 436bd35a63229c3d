"""``GET /metrics``: the server's counters in the Prometheus text format (docs/operations.md).

Nothing here runs per message. Connections, hubs and the store writer keep plain integer
counters (:class:`~edrys_relay.server.connection.Traffic`, ``RoomStats``, ``StreamStats``,
``SecurityStats``, ``WriterStats``); :class:`RelayCollector` reads them when Prometheus
scrapes. The two histograms are observed once per group commit (store commit latency) and once
per event-loop lag sample.

Label values come from fixed sets only (door names, refusal and drop reasons), never from a
room name, an address or a token: cardinality stays bounded and metrics reveal no secret.
Another part of the server adds its own metrics with :meth:`RelayMetrics.register`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from edrys_relay import __version__
from edrys_relay.server.connection import Traffic

if TYPE_CHECKING:
    from edrys_relay.server.app import RelayServer

PREFIX = "edrys_relay_"
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
"""Seconds; an fsync'ed SQLite commit takes about a millisecond on a local SSD."""
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RelayMetrics:
    """The registry behind ``/metrics``: one per server, so servers in one process never mix."""

    def __init__(self) -> None:
        # No `_created` series beside every counter and histogram: they double the output and
        # Prometheus' text-format scrapes do not use them (a process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.commit_seconds = Histogram(
            PREFIX + "store_commit_seconds",
            "Time of one group commit to the store (Redis mode: one XADD pipeline), retries "
            "included",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            PREFIX + "event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled twice a second)",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

    def register(self, collector: Collector) -> None:
        """Add a collector; it is called on every scrape, from the event loop thread."""
        self.registry.register(collector)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics when ``accept`` asks) and its type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    async def watch_loop_lag(self, interval: float) -> None:
        """Observe, every ``interval`` seconds, how much later than asked a sleep returned."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - start - interval))


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


class RelayCollector(Collector):
    """Reads the server's counters at scrape time (docs/operations.md lists every metric)."""

    def __init__(self, server: RelayServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        s = self._server
        doors = list(s.traffic.values())
        yield _info()
        yield _per_door(
            GaugeMetricFamily(
                PREFIX + "connections", "Open WebSocket connections", labels=["door"]
            ),
            doors,
            lambda t: t.open,
        )
        yield _per_door(
            CounterMetricFamily(
                PREFIX + "connections_opened",
                "WebSocket connections admitted (upgrade accepted and under the caps)",
                labels=["door"],
            ),
            doors,
            lambda t: t.opened,
        )
        rooms = GaugeMetricFamily(
            PREFIX + "rooms",
            "Open rooms: loaded Yjs rooms, signaling topics, stream rooms",
            labels=["door"],
        )
        rooms.add_metric(["yjs"], len(s.rooms.rooms))
        rooms.add_metric(["signaling"], len(s.topics.topics))
        rooms.add_metric(["stream"], len(s.streams.rooms))
        yield rooms
        yield from _traffic(doors)
        yield from _yjs(s)
        yield from _store(s)
        yield from _streams(s)
        yield _refusals(s)


def _info() -> Metric:
    info = InfoMetricFamily(PREFIX + "build", "The running edrys-relay")
    info.add_metric([], {"version": __version__})
    return info


def _per_door(
    family: GaugeMetricFamily | CounterMetricFamily,
    doors: Iterable[Traffic],
    value: Callable[[Traffic], int],
) -> Metric:
    for traffic in doors:
        family.add_metric([traffic.door], value(traffic))
    return family


_TRAFFIC: tuple[tuple[str, str, Callable[[Traffic], int]], ...] = (
    ("messages_received", "WebSocket messages received", lambda t: t.messages_in),
    (
        "messages_sent",
        "WebSocket messages sent (a broadcast to 30 counts 30)",
        lambda t: t.messages_out,
    ),
    ("received_bytes", "Bytes read, upgrade requests included, before TLS", lambda t: t.bytes_in),
    ("sent_bytes", "Bytes written, upgrade responses included, before TLS", lambda t: t.bytes_out),
    (
        "slow_consumers_dropped",
        "Receivers dropped because their send buffer stayed full",
        lambda t: t.slow_dropped,
    ),
)


def _traffic(doors: list[Traffic]) -> Iterator[Metric]:
    for name, help_text, value in _TRAFFIC:
        yield _per_door(
            CounterMetricFamily(PREFIX + name, help_text, labels=["door"]), doors, value
        )


def _yjs(s: RelayServer) -> Iterator[Metric]:
    updates = CounterMetricFamily(
        PREFIX + "yjs_updates",
        "Document updates received, by what became of them",
        labels=["outcome"],
    )
    updates.add_metric(["applied"], s.rooms.stats.updates_applied)
    updates.add_metric(["unchanged"], s.rooms.stats.updates_ignored)
    updates.add_metric(["read_only"], s.stats.read_only_dropped)
    updates.add_metric(["document_limit"], s.stats.document_limit)
    yield updates
    yield CounterMetricFamily(
        PREFIX + "yjs_awareness_dropped",
        "Awareness entries dropped (rate, or a client ID another connection owns)",
        value=s.stats.awareness_dropped,
    )
    yield GaugeMetricFamily(
        PREFIX + "yjs_history_bytes",
        "Bytes of committed history held by the loaded rooms",
        value=sum(room.log_bytes for room in s.rooms.rooms.values()),
    )


def _store(s: RelayServer) -> Iterator[Metric]:
    stats = s.bus.stats
    yield CounterMetricFamily(
        PREFIX + "store_updates_committed",
        "Document updates made durable (SQLite commit, or Redis XADD)",
        value=stats.updates,
    )
    yield CounterMetricFamily(
        PREFIX + "store_committed_bytes", "Bytes of updates committed", value=stats.bytes
    )
    yield CounterMetricFamily(
        PREFIX + "store_commit_failures",
        "Group commits that failed and were retried",
        value=stats.failures,
    )
    yield GaugeMetricFamily(
        PREFIX + "store_backlog_bytes",
        "Bytes of updates waiting for their commit",
        value=s.bus.backlog_bytes,
    )


def _streams(s: RelayServer) -> Iterator[Metric]:
    stats = s.streams.stats
    yield GaugeMetricFamily(
        PREFIX + "stream_sources",
        "Stream rooms with a source",
        value=sum(room.source is not None for room in s.streams.rooms.values()),
    )
    yield CounterMetricFamily(
        PREFIX + "stream_frames_received", "Frames accepted from sources", value=stats.frames_in
    )
    yield CounterMetricFamily(
        PREFIX + "stream_frames_relayed",
        "Frames written to viewers (one frame to ten viewers counts ten)",
        value=stats.frames_relayed,
    )
    dropped = CounterMetricFamily(
        PREFIX + "stream_frames_dropped",
        "Frames not relayed: replaced by a newer one for a slow viewer, over the source's "
        "frame rate, or rejected as malformed",
        labels=["reason"],
    )
    dropped.add_metric(["replaced"], stats.frames_dropped)
    dropped.add_metric(["rate_limit"], stats.frames_rate_limited)
    dropped.add_metric(["rejected"], stats.frames_rejected)
    yield dropped
    yield GaugeMetricFamily(
        PREFIX + "stream_buffered_bytes",
        "Bytes held for stream clients: write buffers plus waiting frames",
        value=s.streams.buffered_bytes(),
    )


def _refusals(s: RelayServer) -> Metric:
    refusals = CounterMetricFamily(
        PREFIX + "refusals",
        "Upgrades refused, connections shed or closed by a limit, subscriptions refused",
        labels=["reason"],
    )
    security = s.stats
    for reason, value in (
        ("bad_request", security.refused_request),
        ("origin", security.refused_origin),
        ("token", security.refused_token),
        ("capacity", security.shed),
        ("rate_limit", security.rate_limited),
        ("token_expired", security.tokens_expired),
        ("storage_busy", s.rooms.stats.storage_busy),
        ("topic", s.topics.refused),
        ("stream_room", s.streams.stats.refused),
    ):
        refusals.add_metric([reason], value)
    return refusals


__all__ = ["COMMIT_BUCKETS", "LAG_BUCKETS", "RelayCollector", "RelayMetrics", "authorized"]
