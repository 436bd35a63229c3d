"""Command line: ``edrys-relay serve`` and friends. The only module that prints for people."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
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

examples:
  edrys-relay serve                      listen on 0.0.0.0:1234
  edrys-relay serve --port=8080          flags accept --flag value and --flag=value
  HOST=127.0.0.1 edrys-relay serve       only this machine can connect
"""

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
    serve.set_defaults(run=_serve)
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
    settings = Settings(
        host=args.host,
        port=args.port,
        room_idle_seconds=args.room_idle_seconds,
        **stream_settings(args),
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
    ws_url = bound.public_url("ws")
    http_url = bound.public_url("http")
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
    print("\n".join(lines), flush=True)


__all__ = ["build_parser", "main"]
