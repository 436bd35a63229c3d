"""What log lines and metrics may say about secrets: tokens never, room names only as a label
(docs/threats.md V20, A4; docs/operations.md "Redaction").

A token can travel in three places (docs/security.md "Tokens"): the ``token`` query parameter,
a ``yauth-<token>`` subprotocol, and the path prefix ``/t/<token>``. In Edrys a room name is
the key to the classroom (whoever knows it can join), so it is as secret as a token. Every
server log line names a room by :func:`room_label`, a keyed hash that is stable for the life
of the process (lines about one room can be followed) but reveals nothing about the name and
cannot be checked against a guessed one: the key is random per process. A request target meant
for a log goes through :func:`redacted_target`; every line that may carry a URL, a request line
or headers goes through :func:`redact` (the log formatter applies it to every line as a last
line of defence).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

from edrys_relay.protocol.routing import TOKEN_PREFIX

HIDDEN = "…"
LABEL_HEX = 12
"""Hex digits of a room label: 48 bits, so 10,000 loaded rooms collide with odds of 2e-7."""

_LABEL_KEY = os.urandom(16)
_SECRETS = re.compile(
    r"((?:^|[?&\s])token=)[^&\s\"']*"  # query parameter
    r"|(yauth-)[^\s,\"']+"  # subprotocol value
    r"|(/t/)[^/?#:\s\"']+"  # path prefix (minted tokens have no ':')
)
_OPEN_PATHS = frozenset({"/", "/signaling", "/stream"})
"""Request paths that name no room."""


def room_label(room: str) -> str:
    """The name of ``room`` in a log line: ``#`` and 12 hex digits of a keyed hash."""
    digest = hmac.new(_LABEL_KEY, room.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "#" + digest.hexdigest()[:LABEL_HEX]


def redact(text: str) -> str:
    """Hide every token value in free text (a URL, a request line, header lines)."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + HIDDEN, text)


def redacted_target(target: str) -> str:
    """A request target for logs: the door's path, the room as its label, tokens hidden.

    ``/t/<token>/lesson?userid=u`` becomes ``/t/…/#3fa2c1d9e0b4?…``: a token prefix is kept as
    ``/t/…``, the paths of the doors that name no room (``/``, ``/signaling``, ``/stream``)
    stay, a ``/stream/...`` sub-path becomes ``/stream/…``, any other path is a room and
    becomes its label, and any query becomes ``?…`` (it may carry ``token=``).
    """
    path, sep, _ = target.partition("?")
    query = "?" + HIDDEN if sep else ""
    prefix = ""
    if path.startswith(TOKEN_PREFIX):
        _, slash, rest = path[len(TOKEN_PREFIX) :].partition("/")
        prefix, path = TOKEN_PREFIX + HIDDEN, slash + rest
        if not path:
            return prefix + query
    if path in _OPEN_PATHS:
        return prefix + path + query
    if path.startswith("/stream/"):
        return prefix + "/stream/" + HIDDEN + query
    return prefix + "/" + room_label(path[1:] if path.startswith("/") else path) + query


__all__ = ["HIDDEN", "LABEL_HEX", "redact", "redacted_target", "room_label"]
