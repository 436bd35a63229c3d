"""Command line: ``edrys-relay serve`` and friends. The only module that prints for people."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edrys_relay import __version__
from edrys_relay.config import Settings
from edrys_relay.protocol.edrys_link import comm_parameter

DESCRIPTION = """\
edrys-relay: one-port backend for Edrys-Lite classrooms.

One process, one port, serving both communication modes of Edrys-Lite:
  WebSocket mode  ws://HOST:PORT/<room>      y-websocket relay (Yjs sync + awareness)
  WebRTC mode     ws://HOST:PORT/            y-webrtc signaling (also /signaling)
  video streams   ws://HOST:PORT/stream      Edrys stream relay
  HTTP            http://HOST:PORT/healthz   health as JSON
"""

SERVE_EPILOG = """\
environment variables (a flag wins over its variable):
  HOST   address to bind (default 0.0.0.0)
  PORT   port to listen on (default 1234)
  SSL_KEY, SSL_CERT     TLS key and certificate files (both set: HTTPS/WSS)
  EDRYS_RELAY_SECRET    room-token secret (turns access control on)
  EDRYS_RELAY_DATA_DIR  where --ssl keeps its self-signed certificate (default ./edrys-data)

examples:
  edrys-relay serve                      listen on 0.0.0.0:1234
  edrys-relay serve --port=8080          flags accept --flag value and --flag=value
  HOST=127.0.0.1 edrys-relay serve       only this machine can connect
  edrys-relay serve --ssl                HTTPS/WSS with a self-signed certificate
  edrys-relay serve --ssl-key=k.pem --ssl-cert=c.pem --allowed-origin=https://school.example
"""

TOKEN_EPILOG = """\
The token goes into the client's URL as ?token=... (y-websocket: params: {token}) or into a
WebSocket subprotocol "yauth-<token>". Give pupils --read-only tokens to let them watch.

examples:
  EDRYS_RELAY_SECRET=... edrys-relay token ROOM --ttl 2h
  edrys-relay token ROOM --ttl 45m --read-only --auth-secret=...
"""

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 366 * 86400

_DEFAULTS = Settings()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        message = f"edrys-relay: environment variable {name}={raw!r} is not a number"
        raise SystemExit(message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edrys-relay",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edrys-relay {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the relay: y-websocket rooms, y-webrtc signaling and streams on one port.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host",
        default=os.environ.get("HOST") or _DEFAULTS.host,
        help="address to bind (env HOST; default %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=_env_int("PORT", _DEFAULTS.port),
        help="port to listen on, 0 picks a free one (env PORT; default %(default)s)",
    )
    serve.add_argument(
        "--room-idle-seconds",
        type=float,
        default=_DEFAULTS.room_idle_seconds,
        help="keep an empty room loaded this long (default %(default)s)",
    )
    _add_stream_flags(serve)
    serve.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (env LOG_LEVEL; default %(default)s)",
    )
    _add_security_flags(serve)
    serve.set_defaults(run=_serve)
    _add_token_command(commands)
    return parser


def _add_stream_flags(serve: argparse.ArgumentParser) -> None:
    """Flags of the ``/stream`` video relay (docs/stream.md)."""
    group = serve.add_argument_group("video stream relay (/stream)")
    group.add_argument(
        "--stream-max-message",
        type=int,
        metavar="BYTES",
        default=_DEFAULTS.stream_max_message,
        help="largest frame message; larger closes the sender with 1009 (default %(default)s)",
    )
    group.add_argument(
        "--stream-max-fps",
        type=float,
        metavar="FPS",
        default=_DEFAULTS.stream_max_source_fps,
        help="frames per second a source may send; more are dropped (default %(default)s)",
    )
    group.add_argument(
        "--stream-max-viewers",
        type=int,
        metavar="N",
        default=_DEFAULTS.stream_max_viewers,
        help="viewers per stream room (default %(default)s)",
    )
    group.add_argument(
        "--stream-ping-interval",
        type=float,
        metavar="SECONDS",
        default=_DEFAULTS.stream_ping_interval,
        help="keep-alive period; silent clients go after 1-2 periods (default %(default)s)",
    )
    group.add_argument(
        "--stream-hide-rooms",
        action="store_true",
        help="leave the list of rooms with a source out of the 'info' greeting",
    )


def stream_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` fields given by the ``/stream`` flags."""
    return {
        "stream_max_message": args.stream_max_message,
        "stream_max_source_fps": args.stream_max_fps,
        "stream_max_viewers": args.stream_max_viewers,
        "stream_ping_interval": args.stream_ping_interval,
        "stream_list_rooms": not args.stream_hide_rooms,
    }


def _add_security_flags(serve: argparse.ArgumentParser) -> None:
    """TLS, access control, origins and proxies (docs/security.md)."""
    group = serve.add_argument_group("security")
    group.add_argument(
        "--ssl",
        "--https",
        action="store_true",
        help="serve HTTPS/WSS; without --ssl-key/--ssl-cert a self-signed certificate is made",
    )
    group.add_argument("--ssl-key", default=os.environ.get("SSL_KEY"), help="TLS key (PEM)")
    group.add_argument("--ssl-cert", default=os.environ.get("SSL_CERT"), help="TLS cert (PEM)")
    group.add_argument(
        "--cert-dir",
        type=Path,
        default=Path(os.environ.get("EDRYS_RELAY_DATA_DIR") or "edrys-data"),
        help="data directory for the self-signed certificate (default %(default)s)",
    )
    _add_secret_flag(group)
    group.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed to connect, e.g. https://school.example (repeatable)",
    )
    group.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="reverse proxy (address or network) whose X-Forwarded-For is believed (repeatable)",
    )


def _add_secret_flag(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument(
        "--auth-secret",
        action="append",
        default=[],
        metavar="SECRET",
        help="room-token secret, turns access control on; repeat to accept an older one during"
        " a rotation, newest first (env EDRYS_RELAY_SECRET)",
    )


def _add_token_command(commands: Any) -> None:
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
    _add_secret_flag(token)
    token.set_defaults(run=_token)


def _secrets(args: argparse.Namespace) -> tuple[str, ...]:
    env = os.environ.get("EDRYS_RELAY_SECRET")
    return tuple(args.auth_secret) or ((env,) if env else ())


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


def _token(args: argparse.Namespace) -> int:
    from edrys_relay.protocol.errors import ProtocolError
    from edrys_relay.protocol.routing import validate_room_name
    from edrys_relay.security.tokens import Role, TokenSigner

    secrets = _secrets(args)
    if not secrets:
        print("edrys-relay: give --auth-secret or set EDRYS_RELAY_SECRET", file=sys.stderr)
        return 2
    try:
        room = validate_room_name(args.room)
        ttl = parse_ttl(args.ttl)
        signer = TokenSigner(secrets)
    except (ValueError, ProtocolError) as exc:
        print(f"edrys-relay: {exc}", file=sys.stderr)
        return 2
    role = Role.READ if args.read_only else Role.SOURCE if args.source else Role.WRITE
    print(signer.mint(room, role, now=int(time.time()), ttl_seconds=ttl))
    return 0


def _security_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings from the security flags.

    Raises:
        ValueError: unusable flags (the message is for people).
    """
    from edrys_relay.security.addresses import parse_proxies
    from edrys_relay.security.origins import validate_origin
    from edrys_relay.security.tokens import TokenSigner
    from edrys_relay.server import tls

    secrets = _secrets(args)
    if secrets:
        TokenSigner(secrets)  # refuses short secrets
    origins = tuple(validate_origin(o) for o in args.allowed_origin)
    parse_proxies(tuple(args.trusted_proxy))
    cert, key = args.ssl_cert, args.ssl_key
    if bool(cert) != bool(key):
        raise ValueError("--ssl-key and --ssl-cert (or SSL_KEY and SSL_CERT) go together")
    if args.ssl and not cert:
        cert_path, key_path = tls.ensure_self_signed(args.cert_dir / "tls")
        cert, key = str(cert_path), str(key_path)
    if cert:
        tls.server_context(cert, key)  # a bad file is a start-up error, not plain HTTP
    return {
        "auth_secrets": secrets,
        "allowed_origins": origins,
        "trusted_proxies": tuple(args.trusted_proxy),
        "tls_cert_file": cert,
        "tls_key_file": key,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not 0 <= args.port <= 65535:
        print(f"edrys-relay: --port {args.port} is not a port number", file=sys.stderr)
        return 2
    from edrys_relay.server.tls import TLSError

    try:
        security = _security_settings(args)
    except (ValueError, TLSError) as exc:
        print(f"edrys-relay: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        host=args.host,
        port=args.port,
        room_idle_seconds=args.room_idle_seconds,
        **stream_settings(args),
        **security,
    )
    try:
        asyncio.run(_run(settings))
    except OSError as exc:
        print(
            f"edrys-relay: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run(settings: Settings) -> None:
    from edrys_relay.server.app import RelayServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with RelayServer(settings) as server:
        _print_banner(settings, server.port)
        await stop.wait()
        print("edrys-relay: shutting down (clients are told to reconnect)", flush=True)


def _print_banner(settings: Settings, port: int) -> None:
    bound = Settings(host=settings.host, port=port)
    secure = settings.tls_cert_file is not None
    ws_url = bound.public_url("wss" if secure else "ws")
    http_url = bound.public_url("https" if secure else "http")
    websocket_link = comm_parameter("Websocket", websocket_url=ws_url)
    webrtc_link = comm_parameter("WebRTC", signaling=[ws_url])
    lines = [
        f"edrys-relay {__version__} listening on {settings.host}:{port}",
        "",
        "Edrys-Lite > Settings > Communication:",
        f"  WebSocket mode  websocket server URL   {ws_url}",
        f"  WebRTC mode     signaling server URL   {ws_url}",
        f"  video streams   stream URL             {ws_url}/stream",
        f"  health          {http_url}/healthz",
        "",
        "or append to a classroom link:",
        f"  WebSocket mode  #comm={websocket_link}",
        f"  WebRTC mode     #comm={webrtc_link}",
    ]
    if settings.host in ("0.0.0.0", "::", ""):
        lines.append("(other machines: use this machine's address instead of localhost)")
    if settings.auth_secrets:
        lines.append("access control on: clients need a room token (edrys-relay token ROOM)")
    if settings.allowed_origins:
        lines.append(f"allowed origins: {', '.join(settings.allowed_origins)}")
    print("\n".join(lines), flush=True)


__all__ = ["build_parser", "main", "parse_ttl"]
