"""Command line: ``edrys-relay serve`` and friends. The only module that prints for people."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay import __version__
from edrys_relay.client.options import ClientOptions
from edrys_relay.config import Settings
from edrys_relay.protocol.awareness import AwarenessChange
from edrys_relay.protocol.edrys_link import comm_parameter
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName, validate_room_name
from edrys_relay.storage.base import Store, StoreError

if TYPE_CHECKING:
    from edrys_relay.client import Classroom

DESCRIPTION = """\
edrys-relay: one-port backend for Edrys-Lite classrooms.

One process, one port, serving both communication modes of Edrys-Lite:
  WebSocket mode  ws://HOST:PORT/<room>      y-websocket relay (Yjs sync + awareness)
  WebRTC mode     ws://HOST:PORT/            y-webrtc signaling (also /signaling)
  video streams   ws://HOST:PORT/stream      Edrys stream relay
  classroom page  http://HOST:PORT/          join, switch modes, share links, check WebRTC
  HTTP            http://HOST:PORT/healthz   health as JSON
"""

SERVE_EPILOG = """\
environment variables (a flag wins over its variable):
  HOST                   address to bind (default 0.0.0.0)
  PORT                   port to listen on (default 1234)
  EDRYS_RELAY_STORE      sqlite (default) or memory
  EDRYS_RELAY_DATA_DIR   where the SQLite database lives (default ./edrys-data)
  SSL_KEY, SSL_CERT      TLS key and certificate files (both set: HTTPS/WSS)
  EDRYS_RELAY_SECRET     room-token secret (turns access control on)

examples:
  edrys-relay serve                      listen on 0.0.0.0:1234
  edrys-relay serve --port=8080          flags accept --flag value and --flag=value
  HOST=127.0.0.1 edrys-relay serve       only this machine can connect
  edrys-relay serve --data-dir /var/lib/edrys   keep classrooms there
  edrys-relay serve --store memory       nothing is written to disk
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
    _add_storage_flags(serve)
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
    _add_rooms_command(commands)
    _add_export_command(commands)
    _add_import_command(commands)
    _add_compact_command(commands)
    _add_join_parser(commands)
    _add_doctor_parser(commands)
    return parser


def _add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("EDRYS_RELAY_DATA_DIR") or _DEFAULTS.data_dir,
        help="directory of the SQLite database (env EDRYS_RELAY_DATA_DIR; default %(default)s)",
    )


def _add_storage_flags(serve: argparse.ArgumentParser) -> None:
    """The storage flags of ``serve`` (docs/storage.md)."""
    serve.add_argument(
        "--store",
        choices=["sqlite", "memory"],
        default=os.environ.get("EDRYS_RELAY_STORE") or _DEFAULTS.store,
        help="sqlite keeps classrooms across restarts, memory forgets them "
        "(env EDRYS_RELAY_STORE; default %(default)s)",
    )
    _add_data_dir_flag(serve)
    serve.add_argument(
        "--compact-updates",
        type=int,
        default=_DEFAULTS.compact_updates,
        help="merge a room's history after this many new updates (default %(default)s)",
    )
    serve.add_argument(
        "--compact-bytes",
        type=int,
        default=_DEFAULTS.compact_bytes,
        help="... or after this many bytes of new updates (default %(default)s)",
    )


def _add_rooms_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rooms = commands.add_parser("rooms", help="list stored rooms")
    _add_data_dir_flag(rooms)
    rooms.set_defaults(run=_rooms)


def _add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export", help="write a room as one Yjs update (Y.applyUpdate accepts it)"
    )
    export.add_argument("room")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    _add_data_dir_flag(export)
    export.set_defaults(run=_export)


def _add_import_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = commands.add_parser("import", help="add a Yjs update file to a room")
    imp.add_argument("room")
    imp.add_argument("file", help="a Yjs v1 update, e.g. from edrys-relay export")
    _add_data_dir_flag(imp)
    imp.set_defaults(run=_import)


def _add_compact_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compact = commands.add_parser("compact", help="merge the history of one room or of all")
    compact.add_argument("room", nargs="?", help="the room (default: every stored room)")
    _add_data_dir_flag(compact)
    compact.set_defaults(run=_compact)


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
    group.add_argument(
        "--max-connections",
        type=_positive_int,
        default=_DEFAULTS.max_connections,
        metavar="N",
        help="open WebSocket connections; more are closed with 1013 (default %(default)s)",
    )
    group.add_argument(
        "--max-connections-per-address",
        type=_positive_int,
        default=_DEFAULTS.max_connections_per_address,
        metavar="N",
        help="open WebSocket connections per client address, e.g. a school's NAT address"
        " (default %(default)s)",
    )
    group.add_argument(
        "--message-rate",
        type=_positive_float,
        default=_DEFAULTS.message_rate,
        metavar="PER_SECOND",
        help="average frames per second one connection may send before it is closed with 1008"
        " (default %(default)s)",
    )
    group.add_argument(
        "--message-burst",
        type=int,
        default=_DEFAULTS.message_burst,
        metavar="FRAMES",
        help="frames a connection may send at once above that average (default %(default)s)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


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
        cert_path, key_path = tls.ensure_self_signed(Path(args.data_dir) / "tls")
        cert, key = str(cert_path), str(key_path)
    if cert:
        tls.server_context(cert, key)  # a bad file is a start-up error, not plain HTTP
    return {
        "auth_secrets": secrets,
        "allowed_origins": origins,
        "trusted_proxies": tuple(args.trusted_proxy),
        "tls_cert_file": cert,
        "tls_key_file": key,
        "max_connections": args.max_connections,
        "max_connections_per_address": args.max_connections_per_address,
        "message_rate": args.message_rate,
        "message_burst": args.message_burst,
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
    if args.log_level.upper() != "DEBUG":
        # websockets' own "connection open/closed" lines carry no connection id; ours do.
        logging.getLogger("websockets.server").setLevel(logging.WARNING)
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
        store=args.store,
        data_dir=args.data_dir,
        compact_updates=args.compact_updates,
        compact_bytes=args.compact_bytes,
        **stream_settings(args),
        **security,
    )
    try:
        asyncio.run(_run(settings))
    except StoreError as exc:
        print(f"edrys-relay: storage: {exc}", file=sys.stderr)
        return 1
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
        tune_gc()
        _print_banner(settings, server.port)
        await stop.wait()
        print("edrys-relay: shutting down (clients are told to reconnect)", flush=True)


GC_THRESHOLDS = (10_000, 50, 100)
"""Collector thresholds of a serving process (Python's defaults: 700, 10, 10)."""


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a server with thousands of connections.

    With the defaults, collections took 18 % of the CPU of 5,000 clients connecting
    (docs/performance.md "Garbage collection"): every full collection walks every object,
    including the ~100k that imports created. Those are frozen (never scanned again), and the
    young generation is collected every 10,000 allocations instead of every 700.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
        "",
        _storage_line(settings),
    ]
    if settings.host in ("0.0.0.0", "::", ""):
        lines.append("(other machines: use this machine's address instead of localhost)")
    if settings.auth_secrets:
        lines.append("access control on: clients need a room token (edrys-relay token ROOM)")
    if settings.allowed_origins:
        lines.append(f"allowed origins: {', '.join(settings.allowed_origins)}")
    print("\n".join(lines), flush=True)


def _storage_line(settings: Settings) -> str:
    if settings.store == "memory":
        return "storage: memory (classrooms are lost when the server stops)"
    return f"storage: sqlite in {Path(settings.data_dir).resolve()}"


# -- offline room commands ----------------------------------------------------------------------


def _open_sqlite(args: argparse.Namespace) -> Store:
    from edrys_relay.storage.sqlite import DB_FILENAME, SQLiteStore

    if not (Path(args.data_dir) / DB_FILENAME).exists():
        raise StoreError(f"no database in {args.data_dir} (see --data-dir)")
    return SQLiteStore(Path(args.data_dir))


def _room_arg(name: str) -> RoomName:
    try:
        return validate_room_name(name, _DEFAULTS.max_room_name)
    except ProtocolError as exc:
        raise StoreError(f"bad room name {name!r}: {exc}") from None


def _offline(command: str, args: argparse.Namespace) -> int:
    """Run an offline command, turning storage and input problems into one-line messages."""
    from edrys_relay import admin

    try:
        store = _open_sqlite(args)
    except StoreError as exc:
        print(f"edrys-relay {command}: {exc}", file=sys.stderr)
        return 1
    try:
        return _OFFLINE[command](store, args)
    except admin.NoSuchRoom as exc:
        print(f"edrys-relay {command}: no stored room named {exc}", file=sys.stderr)
    except (StoreError, ProtocolError, OSError) as exc:
        print(f"edrys-relay {command}: {exc}", file=sys.stderr)
    finally:
        store.close()
    return 1


def _rooms(args: argparse.Namespace) -> int:
    return _offline("rooms", args)


def _export(args: argparse.Namespace) -> int:
    return _offline("export", args)


def _import(args: argparse.Namespace) -> int:
    return _offline("import", args)


def _compact(args: argparse.Namespace) -> int:
    return _offline("compact", args)


def _list_rooms(store: Store, args: argparse.Namespace) -> int:
    print(f"{'ROOM':<32} {'RECORDS':>8} {'BYTES':>12}  LAST ACTIVITY (UTC)")
    for info in store.rooms():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(info.last_activity))
        print(f"{info.name:<32} {info.records:>8} {info.size_bytes:>12}  {when}")
    return 0


def _export_room(store: Store, args: argparse.Namespace) -> int:
    from edrys_relay.admin import export_room

    update = export_room(store, _room_arg(args.room))
    if args.output:
        Path(args.output).write_bytes(update)
    else:
        sys.stdout.buffer.write(update)
        sys.stdout.buffer.flush()
    return 0


def _import_room(store: Store, args: argparse.Namespace) -> int:
    from edrys_relay.admin import import_update

    room = _room_arg(args.room)
    update = Path(args.file).read_bytes()
    import_update(store, room, update)
    print(f"imported {len(update)} bytes into room {room}")
    return 0


def _compact_rooms(store: Store, args: argparse.Namespace) -> int:
    from edrys_relay.admin import compact_room

    names = [_room_arg(args.room)] if args.room else [info.name for info in store.rooms()]
    for name in names:
        done = compact_room(store, name)
        note = f", {done.quarantined} quarantined" if done.quarantined else ""
        print(
            f"{name}: {done.records_before} records / {done.bytes_before} bytes -> "
            f"{done.records_after} / {done.bytes_after}{note}"
        )
    return 0


_OFFLINE = {
    "rooms": _list_rooms,
    "export": _export_room,
    "import": _import_room,
    "compact": _compact_rooms,
}


# -- join --------------------------------------------------------------------------------------

JOIN_EPILOG = """\
examples:
  edrys-relay join ws://localhost:1234 MyRoom               print presence and changes
  edrys-relay join ws://localhost:1234 MyRoom --transport websocket
  edrys-relay join ws://localhost:1234 MyRoom --set 'lamp={"on":true}'   write and exit
"""


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password",
        default="password",
        help="WebRTC signaling password (Edrys-Lite always uses %(default)r)",
    )
    parser.add_argument(
        "--framing",
        choices=["edrys", "plain"],
        default="edrys",
        help="data-channel framing: edrys (the y-webrtc fork Edrys-Lite uses) or plain "
        "(upstream y-webrtc); default %(default)s",
    )
    parser.add_argument(
        "--signaling",
        action="append",
        default=[],
        metavar="URL",
        help="signaling server (repeatable; default: SERVER itself)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server such as stun:stun.example.org:3478 (repeatable; default none)",
    )


def _client_options(args: argparse.Namespace, **overrides: Any) -> ClientOptions:
    return ClientOptions(
        password=args.password,
        framing=args.framing,
        signaling_urls=tuple(args.signaling),
        ice_servers=tuple(args.ice_server),
        **overrides,
    )


def _add_join_parser(commands: Any) -> None:
    join = commands.add_parser(
        "join",
        help="join a classroom room and print presence and document changes",
        description="Join ROOM on SERVER (ws://host:port) as a classroom member.",
        epilog=JOIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    join.add_argument("server", metavar="SERVER", help="server URL, e.g. ws://localhost:1234")
    join.add_argument("room", metavar="ROOM", help="room name (classroom id + hash)")
    join.add_argument("--transport", choices=["auto", "websocket", "webrtc"], default="auto")
    join.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="write KEY into the map --map after syncing, then exit (repeatable)",
    )
    join.add_argument("--map", default="data", help="map written by --set (default %(default)s)")
    join.add_argument(
        "--sync-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the first sync (default %(default)s)",
    )
    _add_client_options(join)
    join.set_defaults(run=_join)


def _parse_assignments(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=JSON")
        try:
            values[key] = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"--set {pair!r}: {exc}") from None
    return values


def _join(args: argparse.Namespace) -> int:
    try:
        values = _parse_assignments(args.set)
        asyncio.run(_run_join(args, values))
    except ValueError as exc:
        print(f"edrys-relay join: {exc}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"edrys-relay join: not synced within {args.sync_timeout}s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _run_join(args: argparse.Namespace, values: dict[str, Any]) -> None:
    from edrys_relay.client import Classroom

    options = _client_options(args)
    async with Classroom(args.server, args.room, transport=args.transport, options=options) as room:
        print(f"joined {args.room}: {room.transport} ({room.transport_reason})", flush=True)
        if values:
            async with asyncio.timeout(args.sync_timeout):
                await room.wait_synced()
            target = room.doc.get(args.map, type=pycrdt.Map)
            for key, value in values.items():
                target[key] = value
            async with asyncio.timeout(args.sync_timeout):
                await room.flush()
            print(f"wrote {', '.join(values)} into {args.map!r} via {room.transport}", flush=True)
            return
        await _watch(room)


async def _watch(room: Classroom) -> None:
    """Print presence and document changes until interrupted."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shown: dict[str, Any] = {}
    changed = asyncio.Event()  # set by the observer; reading roots inside it is not allowed

    def show_doc() -> None:
        changed.clear()
        for name, value in _roots(room.shared.log).items():
            if shown.get(name) != value:
                shown[name] = value
                print(f"doc {name} = {json.dumps(value, ensure_ascii=False)}", flush=True)

    def show_presence(change: AwarenessChange) -> None:
        peers = room.peers()
        for cid in change.added + change.updated:
            print(f"presence {cid} = {json.dumps(peers.get(cid), ensure_ascii=False)}", flush=True)
        for cid in change.removed:
            print(f"presence {cid} left", flush=True)

    room.add_awareness_listener(show_presence)
    subscription = room.doc.observe(lambda _event: changed.set())
    transport = room.transport
    show_doc()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await changed.wait()
            show_doc()
            if room.transport != transport:
                transport = room.transport
                print(f"transport: {transport} ({room.transport_reason})", flush=True)
    finally:
        room.doc.unobserve(subscription)


def _roots(log: list[bytes]) -> dict[str, Any]:
    """Plain values of the document's root types, read from throwaway copies of it.

    A root's type is not in the update, and reading a root as the wrong type breaks later updates
    to it, so the live document is never probed: roots that read as an empty map are read again
    as arrays from a second copy.
    """

    def copy() -> pycrdt.Doc[Any]:
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        for update in log:
            doc.apply_update(update)
        return doc

    as_maps = copy()
    roots: dict[str, Any] = {
        name: as_maps.get(name, type=pycrdt.Map).to_py() for name in sorted(as_maps.keys())
    }
    empty = [name for name, value in roots.items() if not value]
    if empty:
        as_arrays = copy()
        for name in empty:
            roots[name] = as_arrays.get(name, type=pycrdt.Array).to_py() or roots[name]
    return dict(sorted(roots.items()))


# -- doctor ------------------------------------------------------------------------------------


def _add_doctor_parser(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check which doors of a server work and which mode to use",
        description="Check HTTP, the Yjs door, the signaling door, the stream door and a WebRTC "
        "data channel between two local peers through SERVER's signaling.",
    )
    doctor.add_argument("server", metavar="SERVER", help="server URL, e.g. ws://localhost:1234")
    doctor.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per check (default %(default)s)"
    )
    doctor.add_argument("--no-webrtc", action="store_true", help="skip the data-channel check")
    _add_client_options(doctor)
    doctor.set_defaults(run=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from edrys_relay.client.doctor import diagnose, verdict

    options = _client_options(args, connect_timeout=args.timeout)
    checks = asyncio.run(
        diagnose(args.server, seconds=args.timeout, webrtc=not args.no_webrtc, options=options)
    )
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    modes, advice = verdict(checks)
    print()
    for mode, text in modes.items():
        print(f"{mode}: {text}")
    print(f"recommendation: {advice}")
    return 0 if all(check.ok for check in checks) else 1


__all__ = ["build_parser", "main", "parse_ttl"]
