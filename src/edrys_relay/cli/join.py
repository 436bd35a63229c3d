"""``edrys-relay join SERVER ROOM``: be a classroom member from the shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, Any

import pycrdt

from edrys_relay.cli.client_flags import add_client_flags, client_options
from edrys_relay.cli.common import Commands
from edrys_relay.protocol.awareness import AwarenessChange

if TYPE_CHECKING:
    from edrys_relay.client import Classroom

JOIN_EPILOG = """\
examples:
  edrys-relay join ws://localhost:1234 MyRoom               print presence and changes
  edrys-relay join ws://localhost:1234 MyRoom --transport websocket
  edrys-relay join ws://localhost:1234 MyRoom --set 'lamp={"on":true}'   write and exit
"""


def add_parser(commands: Commands) -> None:
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
    add_client_flags(join)
    join.set_defaults(run=run)


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


def run(args: argparse.Namespace) -> int:
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

    options = client_options(args)
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


__all__ = ["add_parser", "run"]
