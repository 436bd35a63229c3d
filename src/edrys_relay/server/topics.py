"""Topics behind the y-webrtc signaling door (protocols.md §4.2).

Set semantics for subscriptions; a publish goes, serialised once, to every subscriber of its
topic including the publisher; everything of a connection is removed when it closes, and
empty topics are deleted so the topic map tracks live topics only.

Limits (docs/threats.md V11, B11): topics per connection and subscribers per topic are capped; a
subscription over a cap, or to a topic the connection holds no token for, is refused (not
made, counted, the rest of the frame still applies). With access control on, a connection may
only publish to topics it is subscribed to, and ``clients`` counts are not sent.

With a :class:`TopicRelay` (``cluster/relays.py``), publishes also reach the subscribers on
other nodes; caps stay per node, and ``clients`` counts are not sent: a node knows only its own
subscribers, and the Python client reads a count of one as an empty room (docs/client.md).

An ``observer`` (the WebRTC bridge, ``server/bridge.py``, which runs on one node only) is told
of every publish this node's connections make that the hub accepts, with its sender; while it
decides whether to join a topic, that topic's publishes carry no ``clients`` count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from edrys_relay.protocol import signaling
from edrys_relay.server.peer import Peer

logger = logging.getLogger(__name__)


class PublishObserver(Protocol):
    """Sees every accepted publish with its sender (the WebRTC bridge, ``server/bridge.py``)."""

    def published(self, sender: Peer, message: signaling.Publish) -> None: ...

    def may_join(self, topic: str) -> bool:
        """True while the observer is deciding whether to subscribe to ``topic``.

        A ``clients`` count sent meanwhile would leave the observer out, and the Python client
        reads a count of one as an empty room (docs/client.md "Empty rooms"), so none is sent.
        """
        ...


class TopicRelay(Protocol):
    """Carries publishes to the other nodes and brings theirs (``cluster/relays.py``)."""

    def opened(self, topic: str) -> None:
        """This node has a subscriber of ``topic`` now."""
        ...

    def closed(self, topic: str) -> None:
        """... and now no longer."""
        ...

    def publish(self, topic: str, message: dict[str, Any]) -> None: ...


@dataclass
class TopicHub:
    """Who is subscribed to what."""

    show_client_count: bool = True
    require_subscription: bool = False
    """Refuse publishes to topics the sender is not subscribed to."""
    max_topics_per_connection: int = 32
    max_subscribers_per_topic: int = 128
    topics: dict[str, set[Peer]] = field(default_factory=dict)
    subscriptions: dict[Peer, set[str]] = field(default_factory=dict)
    allowed: dict[Peer, frozenset[str]] = field(default_factory=dict)
    refused: int = 0
    """Subscriptions and publishes refused by a cap or for lack of a token."""
    relay: TopicRelay | None = None
    observer: PublishObserver | None = None
    """Called with every accepted publish and its sender."""

    def connect(self, peer: Peer, allowed: frozenset[str] | None = None) -> None:
        """Register a connection; ``allowed`` restricts the topics it may join (None: any)."""
        self.subscriptions[peer] = set()
        if allowed is not None:
            self.allowed[peer] = allowed

    def disconnect(self, peer: Peer) -> None:
        self.allowed.pop(peer, None)
        for topic in self.subscriptions.pop(peer, set()):
            self._remove(topic, peer)

    def receive(self, peer: Peer, text: str, *, max_topic_length: int) -> None:
        """Handle one text frame.

        Raises:
            ProtocolError: the frame is not a well-formed signaling message.
        """
        message = signaling.decode_signaling(text, max_topic_length=max_topic_length)
        if isinstance(message, signaling.Publish):
            self.publish(peer, message)
        elif isinstance(message, signaling.Subscribe):
            self.subscribe(peer, message.topics)
        elif isinstance(message, signaling.Unsubscribe):
            self.unsubscribe(peer, message.topics)
        elif isinstance(message, signaling.Ping):
            peer.send(signaling.PONG)

    def subscribe(self, peer: Peer, topics: tuple[str, ...]) -> None:
        mine = self.subscriptions.setdefault(peer, set())
        allowed = self.allowed.get(peer)
        for topic in topics:
            if topic in mine:
                continue
            members = self.topics.get(topic, set())
            if (
                (allowed is not None and topic not in allowed)
                or len(mine) >= self.max_topics_per_connection
                or len(members) >= self.max_subscribers_per_topic
            ):
                self.refused += 1
                logger.info(
                    "%s subscription refused (no token or over a cap)",
                    peer.id,
                    extra={"event": "signaling.refused", "conn": peer.id, "door": "signaling"},
                )
                continue
            if not members and self.relay is not None:
                self.relay.opened(topic)
            self.topics[topic] = members
            members.add(peer)
            mine.add(topic)

    def unsubscribe(self, peer: Peer, topics: tuple[str, ...]) -> None:
        mine = self.subscriptions.get(peer, set())
        for topic in topics:
            if topic in mine:
                mine.discard(topic)
                self._remove(topic, peer)

    def publish(self, sender: Peer, message: signaling.Publish) -> None:
        if self.require_subscription and message.topic not in self.subscriptions.get(sender, ()):
            self.refused += 1
            return
        if self.observer is not None:
            self.observer.published(sender, message)
        if self.relay is not None:
            self.relay.publish(message.topic, message.message)
        self.deliver(message.topic, message.message)

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        """Send a publish to this node's subscribers of ``topic``."""
        receivers = self.topics.get(topic)
        if not receivers:
            return
        counted = self.show_client_count and self.relay is None
        if counted and self.observer is not None and self.observer.may_join(topic):
            counted = False
        count = len(receivers) if counted else None
        text = signaling.encode_publish(message, count)
        for receiver in list(receivers):
            receiver.send(text)

    def _remove(self, topic: str, peer: Peer) -> None:
        members = self.topics.get(topic)
        if members is None:
            return
        members.discard(peer)
        if not members:
            del self.topics[topic]
            if self.relay is not None:
                self.relay.closed(topic)

    @property
    def connection_count(self) -> int:
        return len(self.subscriptions)


__all__ = ["PublishObserver", "TopicHub", "TopicRelay"]
