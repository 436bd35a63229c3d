"""Room access control at the door: which tokens a request carries and what they grant.

Off unless a secret is configured, so stock Edrys-Lite keeps working. When on, every upgrade is
decided before the WebSocket handshake completes (docs/threats.md A1): the Yjs door needs a token
for its room, the signaling and stream doors need at least one valid token; no frame of an
unauthorised client is ever read. Tokens come from the path prefix ``/t/<token>`` (the only place
stock Edrys-Lite can carry one, see ``protocol/routing.py``), the ``token`` query parameter
(repeatable, or comma-separated, for one signaling connection serving several rooms) or a
``Sec-WebSocket-Protocol`` value ``yauth-<token>`` (after y-redis), which keeps them out of URLs
and access logs. All three are redacted from every log line (``security/redaction.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from edrys_relay.config import Settings
from edrys_relay.protocol.routing import Route, YjsRoute
from edrys_relay.security.redaction import redact, redacted_target
from edrys_relay.security.tokens import Claims, Role, TokenError, TokenSigner

SUBPROTOCOL = "yauth"
SUBPROTOCOL_PREFIX = "yauth-"
MAX_TOKENS = 16
"""Tokens looked at per request; more are ignored (bounded verification work)."""


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Formats each record and redacts tokens before it reaches any handler.

    Given to websockets' protocol objects so their debug lines (request line, headers) never
    carry a token.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, redact(text), **kwargs)


@dataclass(frozen=True, slots=True)
class Grants:
    """The verified tokens of one connection, by room."""

    rooms: dict[str, list[Claims]] = field(default_factory=dict)

    def roles(self, room: str) -> set[Role]:
        return {claims.role for claims in self.rooms.get(room, ())}

    def can_write(self, room: str) -> bool:
        return Role.WRITE in self.roles(room)

    def may_view(self, room_id: str) -> bool:
        """Watch a room's stream: any token for the room."""
        return bool(self.roles(room_id))

    def may_source(self, room_id: str) -> bool:
        """Be a room's stream source: a ``source`` token (docs/threats.md B15)."""
        return Role.SOURCE in self.roles(room_id)

    @property
    def expires(self) -> int | None:
        """When the first of these tokens runs out (the connection is closed then)."""
        return min((c.expires for cs in self.rooms.values() for c in cs), default=None)


class AccessControl:
    """Token checks for the upgrade handshake."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._signer = TokenSigner(settings.auth_secrets) if settings.auth_secrets else None
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._signer is not None

    def grants(self, request: Request, route: Route) -> Grants:
        """Verify every token the request carries; invalid ones grant nothing."""
        grants = Grants()
        if self._signer is None:
            return grants
        now = self._clock()
        for token in [*route.tokens, *request_tokens(request)][:MAX_TOKENS]:
            try:
                claims = self._signer.verify(token, now=now)
            except TokenError:
                continue
            grants.rooms.setdefault(claims.room, []).append(claims)
        return grants

    def admits(self, route: Route, grants: Grants) -> bool:
        """Whether a connection with ``grants`` may open ``route``."""
        if self._signer is None:
            return True
        if isinstance(route, YjsRoute):
            return bool(grants.roles(route.room))
        return bool(grants.rooms)


def select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Answer a token-carrying subprotocol offer; browsers fail a handshake without one.

    The plain ``yauth`` marker is preferred so the response does not echo the token. websockets
    calls this as a method of each connection's ``ServerProtocol``.
    """
    if SUBPROTOCOL in offered:
        return Subprotocol(SUBPROTOCOL)
    for value in offered:
        if value.startswith(SUBPROTOCOL_PREFIX):
            return value
    return None


def request_tokens(request: Request) -> list[str]:
    """Tokens from the query (``token=a&token=b`` or ``token=a,b``) and from subprotocols.

    Path-prefix tokens are the route's (:func:`~edrys_relay.protocol.routing.route_request`).
    """
    _, _, query = request.path.partition("?")
    tokens: list[str] = []
    try:
        pairs = parse_qsl(query, max_num_fields=64)
    except ValueError:  # too many fields: the router refuses such targets before this
        pairs = []
    for key, value in pairs:
        if key == "token":
            tokens.extend(t for t in value.split(",") if t)
    for header in request.headers.get_all("Sec-WebSocket-Protocol"):
        for value in header.split(","):
            value = value.strip()
            if value.startswith(SUBPROTOCOL_PREFIX):
                tokens.append(value[len(SUBPROTOCOL_PREFIX) :])
    return tokens


__all__ = [
    "SUBPROTOCOL",
    "SUBPROTOCOL_PREFIX",
    "AccessControl",
    "Grants",
    "RedactingLogger",
    "redact",
    "redacted_target",
    "request_tokens",
    "select_subprotocol",
]
