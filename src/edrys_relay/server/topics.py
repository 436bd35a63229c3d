"""Topics behind the y-webrtc signaling door (protocols.md §4.2).

Set semantics for subscriptions; a publish goes, serialised once, to every subscriber of its
topic including the publisher; everything of a connection is removed when it closes, and
empty topics are deleted so the topic map tracks live topics only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from edrys_relay.protocol import signaling
from edrys_relay.server.peer import Peer

logger = logging.getLogger(__name__)


@dataclass
class TopicHub:
    """Who is subscribed to what."""

    show_client_count: bool = True
    topics: dict[str, set[Peer]] = field(default_factory=dict)
    subscriptions: dict[Peer, set[str]] = field(default_factory=dict)

    def connect(self, peer: Peer) -> None:
        self.subscriptions[peer] = set()

    def disconnect(self, peer: Peer) -> None:
        for topic in self.subscriptions.pop(peer, set()):
            self._remove(topic, peer)

    def receive(self, peer: Peer, text: str, *, max_topic_length: int) -> None:
        """Handle one text frame.

        Raises:
            ProtocolError: the frame is not a well-formed signaling message.
        """
        message = signaling.decode_signaling(text, max_topic_length=max_topic_length)
        if isinstance(message, signaling.Publish):
            self.publish(message)
        elif isinstance(message, signaling.Subscribe):
            self.subscribe(peer, message.topics)
        elif isinstance(message, signaling.Unsubscribe):
            self.unsubscribe(peer, message.topics)
        elif isinstance(message, signaling.Ping):
            peer.send(signaling.PONG)

    def subscribe(self, peer: Peer, topics: tuple[str, ...]) -> None:
        mine = self.subscriptions.setdefault(peer, set())
        for topic in topics:
            self.topics.setdefault(topic, set()).add(peer)
            mine.add(topic)

    def unsubscribe(self, peer: Peer, topics: tuple[str, ...]) -> None:
        mine = self.subscriptions.get(peer, set())
        for topic in topics:
            if topic in mine:
                mine.discard(topic)
                self._remove(topic, peer)

    def publish(self, message: signaling.Publish) -> None:
        receivers = self.topics.get(message.topic)
        if not receivers:
            return
        count = len(receivers) if self.show_client_count else None
        text = signaling.encode_publish(message.message, count)
        for receiver in list(receivers):
            receiver.send(text)

    def _remove(self, topic: str, peer: Peer) -> None:
        members = self.topics.get(topic)
        if members is None:
            return
        members.discard(peer)
        if not members:
            del self.topics[topic]

    @property
    def connection_count(self) -> int:
        return len(self.subscriptions)


__all__ = ["TopicHub"]
