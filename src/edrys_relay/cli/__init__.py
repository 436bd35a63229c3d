"""Command line: ``edrys-relay serve`` and friends. The only package that prints for people.

One module per command group: :mod:`.serve` (the server), :mod:`.token` (room tokens),
:mod:`.rooms` (offline room commands), :mod:`.join` and :mod:`.doctor` (the Python client).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from edrys_relay import __version__
from edrys_relay.cli import doctor, join, rooms, serve, token

DESCRIPTION = """\
edrys-relay: one-port backend for Edrys-Lite classrooms.

One process, one port, serving both communication modes of Edrys-Lite:
  WebSocket mode  ws://HOST:PORT/<room>      y-websocket relay (Yjs sync + awareness)
  WebRTC mode     ws://HOST:PORT/            y-webrtc signaling (also /signaling)
  video streams   ws://HOST:PORT/stream      Edrys stream relay
  classroom page  http://HOST:PORT/          join, switch modes, share links, check WebRTC
  HTTP            http://HOST:PORT/healthz   health as JSON
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edrys-relay",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edrys-relay {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve.add_parser(commands)
    token.add_parser(commands)
    rooms.add_parsers(commands)
    join.add_parser(commands)
    doctor.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        return 130  # Ctrl-C before a command installed its own handling: no traceback
    return result


__all__ = ["build_parser", "main"]
