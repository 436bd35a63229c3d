"""``edrys-relay serve``: flags and environment to :class:`Settings`, then run the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edrys_relay import __version__
from edrys_relay.cli.common import (
    DEFAULTS,
    Commands,
    add_data_dir_flag,
    add_secret_flag,
    env_int,
    positive_float,
    positive_int,
    secrets,
)
from edrys_relay.cli.logs import configure as configure_logging
from edrys_relay.config import Settings
from edrys_relay.protocol.edrys_link import comm_parameter
from edrys_relay.storage.base import StoreError

logger = logging.getLogger(__name__)

SERVE_EPILOG = """\
environment variables (a flag wins over its variable):
  HOST                   address to bind (default 0.0.0.0)
  PORT                   port to listen on (default 1234)
  EDRYS_RELAY_STORE      sqlite (default) or memory
  EDRYS_RELAY_DATA_DIR   where the SQLite database lives (default ./edrys-data)
  SSL_KEY, SSL_CERT      TLS key and certificate files (both set: HTTPS/WSS)
  EDRYS_RELAY_SECRET     room-token secret (turns access control on)
  EDRYS_RELAY_REDIS      redis://HOST:PORT/DB shared by several nodes (docs/deployment.md)
  EDRYS_RELAY_METRICS_TOKEN   bearer token /metrics requires
  EDRYS_RELAY_LOG_FORMAT text (default) or json

examples:
  edrys-relay serve                      listen on 0.0.0.0:1234
  edrys-relay serve --port=8080          flags accept --flag value and --flag=value
  HOST=127.0.0.1 edrys-relay serve       only this machine can connect
  edrys-relay serve --data-dir /var/lib/edrys   keep classrooms there
  edrys-relay serve --store memory       nothing is written to disk
  edrys-relay serve --ssl                HTTPS/WSS with a self-signed certificate
  edrys-relay serve --redis redis://10.0.0.5:6379/0   one of several nodes sharing rooms
  edrys-relay serve --ssl-key=k.pem --ssl-cert=c.pem --allowed-origin=https://school.example
  edrys-relay serve --host 127.0.0.1 --trusted-proxy 127.0.0.1 --log-format json
                                         behind nginx (deploy/, docs/operations.md)
"""


def add_parser(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the relay: y-websocket rooms, y-webrtc signaling and streams on one port.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host",
        default=os.environ.get("HOST") or DEFAULTS.host,
        help="address to bind (env HOST; default %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=env_int("PORT", DEFAULTS.port),
        help="port to listen on, 0 picks a free one (env PORT; default %(default)s)",
    )
    _add_storage_flags(serve)
    serve.add_argument(
        "--room-idle-seconds",
        type=float,
        default=DEFAULTS.room_idle_seconds,
        help="keep an empty room loaded this long (default %(default)s)",
    )
    _add_stream_flags(serve)
    _add_cluster_flags(serve)
    serve.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (env LOG_LEVEL; default %(default)s)",
    )
    _add_security_flags(serve)
    _add_operations_flags(serve)
    _add_bridge_flags(serve)
    serve.set_defaults(run=run)


def _add_storage_flags(serve: argparse.ArgumentParser) -> None:
    """The storage flags of ``serve`` (docs/storage.md)."""
    serve.add_argument(
        "--store",
        choices=["sqlite", "memory"],
        default=os.environ.get("EDRYS_RELAY_STORE") or DEFAULTS.store,
        help="sqlite keeps classrooms across restarts, memory forgets them "
        "(env EDRYS_RELAY_STORE; default %(default)s)",
    )
    add_data_dir_flag(serve)
    serve.add_argument(
        "--compact-updates",
        type=int,
        default=DEFAULTS.compact_updates,
        help="merge a room's history after this many new updates (default %(default)s)",
    )
    serve.add_argument(
        "--compact-bytes",
        type=int,
        default=DEFAULTS.compact_bytes,
        help="... or after this many bytes of new updates (default %(default)s)",
    )
    serve.add_argument(
        "--sqlite-synchronous",
        choices=["full", "normal"],
        default=os.environ.get("EDRYS_RELAY_SQLITE_SYNCHRONOUS") or DEFAULTS.sqlite_synchronous,
        help="full: every update is on the disk before anyone sees it (survives a power loss); "
        "normal: saves an fsync per relay, survives kill -9 but a power loss may take the "
        "last updates (env EDRYS_RELAY_SQLITE_SYNCHRONOUS; default %(default)s)",
    )


def _add_stream_flags(serve: argparse.ArgumentParser) -> None:
    """Flags of the ``/stream`` video relay (docs/stream.md)."""
    group = serve.add_argument_group("video stream relay (/stream)")
    group.add_argument(
        "--stream-max-message",
        type=int,
        metavar="BYTES",
        default=DEFAULTS.stream_max_message,
        help="largest frame message; larger closes the sender with 1009 (default %(default)s)",
    )
    group.add_argument(
        "--stream-max-fps",
        type=float,
        metavar="FPS",
        default=DEFAULTS.stream_max_source_fps,
        help="frames per second a source may send; more are dropped (default %(default)s)",
    )
    group.add_argument(
        "--stream-max-viewers",
        type=int,
        metavar="N",
        default=DEFAULTS.stream_max_viewers,
        help="viewers per stream room (default %(default)s)",
    )
    group.add_argument(
        "--stream-ping-interval",
        type=float,
        metavar="SECONDS",
        default=DEFAULTS.stream_ping_interval,
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


def _add_cluster_flags(serve: argparse.ArgumentParser) -> None:
    """Scale-out on Redis (docs/deployment.md)."""
    group = serve.add_argument_group("scale-out on Redis (docs/deployment.md)")
    group.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("EDRYS_RELAY_REDIS") or None,
        help="redis://HOST:PORT/DB shared by every node; rooms, signaling and streams then "
        "span all nodes, and --store/--data-dir are not used (env EDRYS_RELAY_REDIS)",
    )
    group.add_argument(
        "--compaction-lease",
        type=positive_float,
        metavar="SECONDS",
        default=DEFAULTS.compaction_lease_seconds,
        help="a compaction a node took and did not finish in this time goes to another node"
        " (default %(default)s)",
    )


def cluster_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings from the Redis flags.

    Raises:
        ValueError: the URL is not a Redis URL.
    """
    url = args.redis
    if url is not None and urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"--redis {redact_url(url)}: expected redis://HOST:PORT/DB")
    return {"redis_url": url, "compaction_lease_seconds": args.compaction_lease}


def redact_url(url: str) -> str:
    """The URL without its password, for banners and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


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
    add_secret_flag(group)
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
        type=positive_int,
        default=DEFAULTS.max_connections,
        metavar="N",
        help="open WebSocket connections; more are closed with 1013 (default %(default)s)",
    )
    group.add_argument(
        "--max-connections-per-address",
        type=positive_int,
        default=DEFAULTS.max_connections_per_address,
        metavar="N",
        help="open WebSocket connections per client address, e.g. a school's NAT address"
        " (default %(default)s)",
    )
    group.add_argument(
        "--message-rate",
        type=positive_float,
        default=DEFAULTS.message_rate,
        metavar="PER_SECOND",
        help="average frames per second one connection may send before it is closed with 1008"
        " (default %(default)s)",
    )
    group.add_argument(
        "--message-burst",
        type=int,
        default=DEFAULTS.message_burst,
        metavar="FRAMES",
        help="frames a connection may send at once above that average (default %(default)s)",
    )


def _add_bridge_flags(serve: argparse.ArgumentParser) -> None:
    """The WebRTC bridge: the server as a y-webrtc peer in every room (docs/design.md)."""
    group = serve.add_argument_group("WebRTC bridge (off by default)")
    group.add_argument(
        "--bridge-webrtc",
        action="store_true",
        help="join every WebRTC room on the signaling door as a peer, so the room's document"
        " is the one the WebSocket door serves, and is stored (the server sees its content)",
    )
    group.add_argument(
        "--bridge-password",
        action="append",
        default=[],
        metavar="PASSWORD",
        help="y-webrtc room password to try (repeatable; default: Edrys-Lite's 'password')",
    )
    group.add_argument(
        "--bridge-max-peers-per-room",
        type=positive_int,
        default=DEFAULTS.bridge_max_peers_per_room,
        metavar="N",
        help="WebRTC peers the server connects to in one room; more stay peer to peer"
        " (default %(default)s)",
    )
    group.add_argument(
        "--bridge-max-peers",
        type=positive_int,
        default=DEFAULTS.bridge_max_peers,
        metavar="N",
        help="WebRTC peers the server connects to in all rooms (default %(default)s)",
    )
    group.add_argument(
        "--bridge-ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for the bridge's connections, e.g. stun:stun.example:3478"
        " (repeatable; default none: the server's own addresses)",
    )


def bridge_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` fields given by the bridge flags."""
    return {
        "bridge_webrtc": args.bridge_webrtc,
        "bridge_passwords": tuple(args.bridge_password) or DEFAULTS.bridge_passwords,
        "bridge_max_peers_per_room": args.bridge_max_peers_per_room,
        "bridge_max_peers": args.bridge_max_peers,
        "bridge_ice_servers": tuple(args.bridge_ice_server),
    }


def security_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings from the security flags.

    Raises:
        ValueError: unusable flags (the message is for people).
    """
    from edrys_relay.security.addresses import parse_proxies
    from edrys_relay.security.origins import validate_origin
    from edrys_relay.security.tokens import TokenSigner
    from edrys_relay.server import tls

    token_secrets = secrets(args)
    if token_secrets:
        TokenSigner(token_secrets)  # refuses short secrets
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
        "auth_secrets": token_secrets,
        "allowed_origins": origins,
        "trusted_proxies": tuple(args.trusted_proxy),
        "tls_cert_file": cert,
        "tls_key_file": key,
        "max_connections": args.max_connections,
        "max_connections_per_address": args.max_connections_per_address,
        "message_rate": args.message_rate,
        "message_burst": args.message_burst,
    }


def _add_operations_flags(serve: argparse.ArgumentParser) -> None:
    """Logs, metrics and the graceful stop (docs/operations.md)."""
    group = serve.add_argument_group("operations")
    group.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("EDRYS_RELAY_LOG_FORMAT") or "text",
        help="stderr log lines as text or one JSON object per line"
        " (env EDRYS_RELAY_LOG_FORMAT; default %(default)s)",
    )
    group.add_argument(
        "--metrics-token",
        default=os.environ.get("EDRYS_RELAY_METRICS_TOKEN") or None,
        metavar="TOKEN",
        help="bearer token GET /metrics requires (env EDRYS_RELAY_METRICS_TOKEN;"
        " default: none, metrics are open)",
    )
    group.add_argument(
        "--close-timeout",
        type=positive_float,
        default=DEFAULTS.close_timeout,
        metavar="SECONDS",
        help="closing handshake deadline; on SIGTERM the drain waits this long for clients"
        " (default %(default)s)",
    )


def operations_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` fields given by the operations flags."""
    return {"metrics_token": args.metrics_token, "close_timeout": args.close_timeout}


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    if not 0 <= args.port <= 65535:
        _fail(args, f"--port {args.port} is not a port number")
        return 2
    from edrys_relay.server.tls import TLSError

    try:
        security = security_settings(args)
        cluster = cluster_settings(args)
    except (ValueError, TLSError) as exc:
        _fail(args, str(exc))
        return 2
    settings = Settings(
        host=args.host,
        port=args.port,
        room_idle_seconds=args.room_idle_seconds,
        store=args.store,
        data_dir=args.data_dir,
        compact_updates=args.compact_updates,
        sqlite_synchronous=args.sqlite_synchronous,
        compact_bytes=args.compact_bytes,
        **stream_settings(args),
        **bridge_settings(args),
        **cluster,
        **security,
        **operations_settings(args),
    )
    if settings.bridge_webrtc and settings.redis_url is not None:
        print("edrys-relay: --bridge-webrtc runs on one node, not with --redis", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(settings))
    except StoreError as exc:
        _fail(args, f"storage: {exc}")
        return 1
    except CannotListen as exc:
        _fail(args, str(exc))
        return 1
    return 0


def _fail(args: argparse.Namespace, message: str) -> None:
    """Say why the server cannot start: a plain line, or a log record in JSON mode."""
    if args.log_format == "json":
        logger.error("%s", message, extra={"event": "server.failed"})
    else:
        print(f"edrys-relay: {message}", file=sys.stderr)


class CannotListen(Exception):
    """The listening socket could not be made; the message names the address and the cause."""


async def _run(settings: Settings) -> None:
    from edrys_relay.server.app import RelayServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(RelayServer(settings))
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            raise CannotListen(f"cannot listen on {where}: {exc.strerror or exc}") from None
        tune_gc()
        _say(_banner(settings, server.port))
        await stop.wait()
        _say("edrys-relay: shutting down (clients are told to reconnect)")


def _say(text: str) -> None:
    """Print ``text``; once standard output is gone (``serve | head -1``), keep serving silently.

    The banner and the shutdown line are for whoever watches; a reader that went away must not
    stop the server. Logging goes to standard error and is not affected.
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


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


def _banner(settings: Settings, port: int) -> str:
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
        f"  metrics         {http_url}/metrics"
        + (" (bearer token)" if settings.metrics_token else ""),
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
        lines.append(
            "access control on: clients need a room token; URLs and links that carry one:"
            f" edrys-relay token ROOM --server {ws_url}"
        )
    if settings.allowed_origins:
        lines.append(f"allowed origins: {', '.join(settings.allowed_origins)}")
    if settings.bridge_webrtc:
        lines.append(
            "WebRTC bridge on: the server joins WebRTC rooms as a peer, sees and stores their"
            " content, and serves the same document on the WebSocket door"
        )
    return "\n".join(lines)


def _storage_line(settings: Settings) -> str:
    if settings.redis_url is not None:
        return f"storage: Redis at {redact_url(settings.redis_url)}, shared with every node"
    if settings.store == "memory":
        return "storage: memory (classrooms are lost when the server stops)"
    where = f"storage: sqlite in {Path(settings.data_dir).resolve()}"
    if settings.sqlite_synchronous == "normal":
        return f"{where} (synchronous=normal: a power loss may take the last updates)"
    return where


__all__ = [
    "GC_THRESHOLDS",
    "add_parser",
    "bridge_settings",
    "cluster_settings",
    "operations_settings",
    "redact_url",
    "run",
    "security_settings",
    "stream_settings",
    "tune_gc",
]
