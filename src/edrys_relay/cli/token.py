"""``edrys-relay token ROOM``: mint a room token from the server's secret."""

from __future__ import annotations

import argparse
import sys
import time

from edrys_relay.cli.common import Commands, add_secret_flag, secrets

TOKEN_EPILOG = """\
The token goes into the client's URL as ?token=... (y-websocket: params: {token}) or into a
WebSocket subprotocol "yauth-<token>". Give pupils --read-only tokens to let them watch.

examples:
  EDRYS_RELAY_SECRET=... edrys-relay token ROOM --ttl 2h
  edrys-relay token ROOM --ttl 45m --read-only --auth-secret=...
"""

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 366 * 86400


def add_parser(commands: Commands) -> None:
    """``edrys-relay token ROOM --ttl 2h [--read-only | --source]``."""
    token = commands.add_parser(
        "token",
        help="mint a room token",
        description="Print a token that admits its holder to one room for a limited time.",
        epilog=TOKEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("room", help="room name (the Yjs document name / signaling topic)")
    token.add_argument("--ttl", default="2h", help="lifetime: 90s, 45m, 2h, 7d (default 2h)")
    role = token.add_mutually_exclusive_group()
    role.add_argument("--read-only", action="store_true", help="may watch, not change")
    role.add_argument("--source", action="store_true", help="may be the room's video source")
    add_secret_flag(token)
    token.set_defaults(run=run)


def parse_ttl(text: str) -> int:
    """Seconds in ``90``, ``90s``, ``45m``, ``2h`` or ``7d``."""
    unit = _TTL_UNITS.get(text[-1:].lower())
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise ValueError(f"--ttl {text!r} is not a duration such as 90s, 45m, 2h or 7d")
    seconds = int(number) * (unit or 1)
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"--ttl must be between 1 second and {MAX_TTL_SECONDS // 86400} days")
    return seconds


def run(args: argparse.Namespace) -> int:
    from edrys_relay.protocol.errors import ProtocolError
    from edrys_relay.protocol.routing import validate_room_name
    from edrys_relay.security.tokens import Role, TokenSigner

    token_secrets = secrets(args)
    if not token_secrets:
        print("edrys-relay: give --auth-secret or set EDRYS_RELAY_SECRET", file=sys.stderr)
        return 2
    try:
        room = validate_room_name(args.room)
        ttl = parse_ttl(args.ttl)
        signer = TokenSigner(token_secrets)
    except (ValueError, ProtocolError) as exc:
        print(f"edrys-relay: {exc}", file=sys.stderr)
        return 2
    role = Role.READ if args.read_only else Role.SOURCE if args.source else Role.WRITE
    print(signer.mint(room, role, now=int(time.time()), ttl_seconds=ttl))
    return 0


__all__ = ["MAX_TTL_SECONDS", "add_parser", "parse_ttl", "run"]
