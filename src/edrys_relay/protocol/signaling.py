"""y-webrtc signaling messages (protocols.md §4.2): JSON objects in text frames.

``subscribe``/``unsubscribe`` carry a list of topics (non-string entries are ignored, as the
reference server does); ``publish`` carries a topic and opaque ``data`` that is forwarded
untouched; ``ping`` is answered with ``pong``. Any other ``type`` is ignored. A frame that is not
a JSON object with a string ``type``, or whose fields have the wrong shape, is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edrys_relay.protocol.errors import InvalidPayload, MessageTooBig


@dataclass(frozen=True, slots=True)
class Subscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Publish:
    """A publish; ``message`` is the whole decoded object, forwarded with ``clients`` added."""

    topic: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed message of a type we do not handle."""

    message_type: str


SignalingMessage = Subscribe | Unsubscribe | Publish | Ping | Ignored

PONG = '{"type":"pong"}'


def decode_signaling(text: str, *, max_topic_length: int = 1024) -> SignalingMessage:
    """Parse one signaling frame.

    Raises:
        InvalidPayload: not JSON, not an object, ``type`` missing or not a string, ``topics``
            not a list, ``publish`` without a string ``topic``.
        MessageTooBig: a topic longer than ``max_topic_length``.
    """
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload("signaling frame is not JSON") from exc
    if not isinstance(message, dict):
        raise InvalidPayload("signaling frame is not a JSON object")
    message_type = message.get("type")
    if not isinstance(message_type, str):
        raise InvalidPayload("signaling frame without a string 'type'")
    if message_type in ("subscribe", "unsubscribe"):
        topics = _topics(message.get("topics", []), max_topic_length)
        return Subscribe(topics) if message_type == "subscribe" else Unsubscribe(topics)
    if message_type == "publish":
        topic = message.get("topic")
        if not isinstance(topic, str):
            raise InvalidPayload("publish without a string 'topic'")
        _check_topic_length(topic, max_topic_length)
        return Publish(topic, message)
    if message_type == "ping":
        return Ping()
    return Ignored(message_type)


def _topics(value: object, max_topic_length: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidPayload("'topics' is not a list")
    topics = tuple(dict.fromkeys(t for t in value if isinstance(t, str)))
    for topic in topics:
        _check_topic_length(topic, max_topic_length)
    return topics


def _check_topic_length(topic: str, max_topic_length: int) -> None:
    if len(topic) > max_topic_length:
        raise MessageTooBig("topic name too long")


def encode_publish(message: dict[str, Any], clients: int | None) -> str:
    """Serialise a publish for its subscribers; ``clients`` is omitted when None (hidden)."""
    if clients is not None:
        message = {**message, "clients": clients}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


__all__ = [
    "PONG",
    "Ignored",
    "Ping",
    "Publish",
    "SignalingMessage",
    "Subscribe",
    "Unsubscribe",
    "decode_signaling",
    "encode_publish",
]
