"""Command line: ``edrys-relay serve`` and friends. The only module that prints for people."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay import __version__
from edrys_relay.client.options import ClientOptions
from edrys_relay.config import Settings
from edrys_relay.protocol.awareness import AwarenessChange
from edrys_relay.protocol.edrys_link import comm_parameter

if TYPE_CHECKING:
    from edrys_relay.client import Classroom

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
    _add_join_parser(commands)
    _add_doctor_parser(commands)
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


__all__ = ["build_parser", "main"]
