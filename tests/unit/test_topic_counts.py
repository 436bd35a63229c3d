"""``clients`` counts on signaling publishes: the topic's subscribers, or none where a count
would mislead (access control on, other nodes that hold subscribers of their own, or a bridge
that is still deciding whether to join the topic)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from edrys_relay.protocol.signaling import Publish
from edrys_relay.server.topics import TopicHub


@dataclass(eq=False)
class FakePeer:
    id: str
    sent: list[str] = field(default_factory=list)

    def send(self, data: bytes | str) -> None:
        assert isinstance(data, str)
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        raise AssertionError("not closed here")


class FakeRelay:
    def opened(self, topic: str) -> None:
        pass

    def closed(self, topic: str) -> None:
        pass

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        pass


@dataclass
class FakeBridge:
    deciding: bool
    seen: list[str] = field(default_factory=list)

    def published(self, sender: Any, message: Publish) -> None:
        self.seen.append(message.topic)

    def may_join(self, topic: str) -> bool:
        return self.deciding


def published(hub: TopicHub) -> dict[str, Any]:
    a, b = FakePeer("a"), FakePeer("b")
    for peer in (a, b):
        hub.connect(peer)
        hub.subscribe(peer, ("room",))
    message = {"type": "publish", "topic": "room", "data": "x"}
    hub.publish(a, Publish(topic="room", message=message))
    (text,) = b.sent
    result: dict[str, Any] = json.loads(text)
    return result


@pytest.mark.parametrize(
    ("hub", "clients"),
    [
        (TopicHub(), 2),
        (TopicHub(show_client_count=False), None),
        (TopicHub(relay=FakeRelay()), None),
        (TopicHub(observer=FakeBridge(deciding=True)), None),
        (TopicHub(observer=FakeBridge(deciding=False)), 2),
    ],
    ids=["one node", "access control", "cluster", "bridge deciding", "bridge decided"],
)
def test_clients_count(hub: TopicHub, clients: int | None) -> None:
    assert published(hub).get("clients") == clients
    if isinstance(hub.observer, FakeBridge):
        assert hub.observer.seen == ["room"]
