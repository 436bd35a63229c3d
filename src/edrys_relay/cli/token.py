"""``edrys-relay token ROOM``: mint a room token from the server's secret.

With ``--server URL`` it prints, one labelled line each, the URLs that carry the token in
their path (``URL/t/<token>``) for Edrys-Lite's settings and the ``#comm=`` link suffixes of
both modes, so stock Edrys-Lite can join a server with access control on (docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
import time

from edrys_relay.cli.common import Commands, add_secret_flag, secrets

TOKEN_EPILOG = """\
Without --server the command prints the bare token, for clients that take it as ?token=...
(y-websocket: params: {token}) or as a WebSocket subprotocol "yauth-<token>".

With --server it prints lines to paste into Edrys-Lite (Settings > Communication) or to
append to a classroom link; each carries the token in its path:
  websocket:      WebSocket server URL (mode Websocket)
  signaling:      signaling server URL (mode WebRTC)
  stream:         stream URL for modules that use the /stream relay
  link websocket: #comm=... suffix that selects WebSocket mode with this server
  link webrtc:    #comm=... suffix that selects WebRTC mode with this server
Anyone who has these lines has the token until it expires. Give pupils --read-only tokens
(enforced in WebSocket mode only). ROOM is Edrys-Lite's room name: the classroom id, or
<id><hash> for a link ?/classroom/<id>/<owner>/<hash>. The stream door checks the roomId a
module sends, the classroom id without <hash>: mint stream tokens for that id.

examples:
  EDRYS_RELAY_SECRET=... edrys-relay token ROOM --ttl 2h
  edrys-relay token ROOM --ttl 45m --read-only --server wss://relay.school.example
"""

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 366 * 86400


def add_parser(commands: Commands) -> None:
    """``edrys-relay token ROOM --ttl 2h [--read-only | --source] [--server URL]``."""
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
    token.add_argument(
        "--server",
        metavar="URL",
        help="the server's public URL (wss://host:port): print ready URLs and #comm= links",
    )
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


def token_lines(server_url: str, token: str, expires: int) -> list[str]:
    """The labelled lines ``--server`` prints.

    Raises:
        ValueError: ``server_url`` is not a usable server URL.
    """
    from edrys_relay.protocol.edrys_link import comm_parameter
    from edrys_relay.protocol.routing import token_url

    url = token_url(server_url, token)
    # Both links name both servers, so switching the mode in Edrys-Lite keeps the token.
    websocket_link = comm_parameter("Websocket", websocket_url=url, signaling=[url])
    webrtc_link = comm_parameter("WebRTC", websocket_url=url, signaling=[url])
    return [
        f"websocket: {url}",
        f"signaling: {url}",
        f"stream: {url}/stream",
        f"link websocket: #comm={websocket_link}",
        f"link webrtc: #comm={webrtc_link}",
        f"token: {token}",
        f"expires: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}",
    ]


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
    now = int(time.time())
    token = signer.mint(room, role, now=now, ttl_seconds=ttl)
    if args.server is None:
        print(token)
        return 0
    try:
        lines = token_lines(args.server, token, now + ttl)
    except ValueError as exc:
        print(f"edrys-relay: --server: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if role is Role.READ:
        print(
            "note: read-only is enforced in WebSocket mode only; WebRTC peers exchange changes"
            " directly",
            file=sys.stderr,
        )
    return 0


__all__ = ["MAX_TTL_SECONDS", "add_parser", "parse_ttl", "run", "token_lines"]
