"""Keep room tokens out of log lines and metric labels (docs/threats.md V20, A4).

A token can travel in three places (docs/security.md "Tokens"): the ``token`` query parameter,
a ``yauth-<token>`` subprotocol, and the path prefix ``/t/<token>``. Every line that may carry a
request target, a URL or request headers goes through :func:`redact`; a request target meant for
a log or a label goes through :func:`redacted_target`.
"""

from __future__ import annotations

import re

from edrys_relay.protocol.routing import TOKEN_PREFIX

HIDDEN = "…"
MAX_TARGET = 120
"""Characters of a path kept in a log line."""

_SECRETS = re.compile(
    r"((?:^|[?&\s])token=)[^&\s\"']*"  # query parameter
    r"|(yauth-)[^\s,\"']+"  # subprotocol value
    r"|(/t/)[^/?#:\s\"']+"  # path prefix (minted tokens have no ':')
)


def redact(text: str) -> str:
    """Hide every token value in free text (a URL, a request line, header lines)."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + HIDDEN, text)


def redacted_target(target: str) -> str:
    """A request target for logs: the token prefix hidden, any query replaced by ``?…``."""
    path, sep, _ = target.partition("?")
    if path.startswith(TOKEN_PREFIX):
        _, slash, rest = path[len(TOKEN_PREFIX) :].partition("/")
        path = f"{TOKEN_PREFIX}{HIDDEN}{slash}{rest}"
    return f"{path[:MAX_TARGET]}?{HIDDEN}" if sep else path[:MAX_TARGET]


__all__ = ["redact", "redacted_target"]
