"""What log lines may say about secrets: tokens never, room names only as a label.

In Edrys a room name is the key to the classroom (whoever knows it can join), so it is as
secret as a token (docs/operations.md "Redaction"). Every log line of the server names a room
by :func:`room_label`, a keyed hash that is stable for the life of the process (lines about one
room can be correlated) but reveals nothing about the name and cannot be checked against a
guessed one: the key is random per process. Request targets are logged through
:func:`redact_path`, and :func:`redact` hides token values in any text as a last line of
defence (the log formatter applies it to every line).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

_LABEL_KEY = os.urandom(16)
LABEL_HEX = 12
"""Hex digits of a room label: 48 bits, so 10,000 loaded rooms collide with odds of 2e-7."""

_SECRETS = re.compile(r"((?:^|[?&\s])token=)[^&\s\"']*|(yauth-)[^\s,\"']+")
_OPEN_PATHS = frozenset({"/", "/signaling", "/stream"})
"""Request paths that name no room."""


def room_label(room: str) -> str:
    """The name of ``room`` in a log line: ``#`` and 12 hex digits of a keyed hash."""
    digest = hmac.new(_LABEL_KEY, room.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "#" + digest.hexdigest()[:LABEL_HEX]


def redact_path(target: str) -> str:
    """A request target for logs: the door's path with the room labelled, any query as ``?…``.

    ``/lesson?token=x`` becomes ``/#3fa2c1d9e0b4?…``; ``/``, ``/signaling`` and ``/stream``
    stay as they are; a ``/stream/...`` sub-path becomes ``/stream/…``.
    """
    path, sep, _ = target.partition("?")
    query = "?…" if sep else ""
    if path in _OPEN_PATHS:
        return path + query
    if path.startswith("/stream/"):
        return "/stream/…" + query
    return "/" + room_label(path[1:] if path.startswith("/") else path) + query


def redact(text: str) -> str:
    """Hide token values (``token=`` query parameters and ``yauth-`` subprotocols) in text."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "…", text)


__all__ = ["LABEL_HEX", "redact", "redact_path", "room_label"]
