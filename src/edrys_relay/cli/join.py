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

from edrys_relay.cli.client_flags import SERVER_HELP, add_client_flags, client_options, reachable
from edrys_relay.cli.common import Commands, positive_float
from edrys_relay.client.urls import server_url
from edrys_relay.protocol.awareness import AwarenessChange

if TYPE_CHECKING:
    from edrys_relay.client import Classroom

JOIN_EPILOG = """\
In an empty room join counts as synced at once (nobody holds anything newer). Over WebRTC a
change written into an empty room reaches nobody: the room lives in its members.

examples:
  edrys-relay join ws://localhost:1234 MyRoom               print presence and changes
  edrys-relay join localhost:1234 MyRoom --transport websocket
  edrys-relay join ws://localhost:1234 MyRoom --set 'lamp={"on":true}'   write and exit

exit status: 0 done (or stopped by Ctrl-C), 1 cannot connect or sync, 2 bad arguments
"""

TRANSPORT_HELP = (
    "auto: WebRTC, moving to the server's WebSocket door when WebRTC cannot work (default); "
    "websocket: the y-websocket door only; webrtc: peers only, through signaling"
)


class JoinError(Exception):
    """Joining failed; the message is for people."""


def add_parser(commands: Commands) -> None:
    join = commands.add_parser(
        "join",
        help="join a classroom room and print presence and document changes",
        description="Join ROOM on SERVER as a classroom member.",
        epilog=JOIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    join.add_argument("server", metavar="SERVER", help=SERVER_HELP)
    join.add_argument("room", metavar="ROOM", help="room name (classroom id + hash)")
    join.add_argument(
        "--transport", choices=["auto", "websocket", "webrtc"], default="auto", help=TRANSPORT_HELP
    )
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
        type=positive_float,
        default=20.0,
        metavar="SECONDS",
        help="wait this long for the first sync, and for --set to send, before giving up with"
        " an error (default %(default)s)",
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
    from edrys_relay.client import Classroom

    try:
        values = _parse_assignments(args.set)
        options = client_options(args)
        room = Classroom(
            server_url(args.server), args.room, transport=args.transport, options=options
        )
    except ValueError as exc:
        print(f"edrys-relay join: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run_join(room, args, values))
    except JoinError as exc:
        print(f"edrys-relay join: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _run_join(room: Classroom, args: argparse.Namespace, values: dict[str, Any]) -> None:
    first = room.server_url if room.mode != "webrtc" else room.signaling_urls[0]
    await reachable(first, room.options.connect_timeout, JoinError)
    async with room:
        await _first_sync(room, args.sync_timeout)
        print(f"joined {args.room}: {room.transport} ({room.transport_reason})", flush=True)
        if values:
            await _write(room, args.map, values, args.sync_timeout)
            return
        await _watch(room)


async def _first_sync(room: Classroom, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await room.wait_synced()
    except TimeoutError:
        if room.problem is not None:
            why = room.problem
        elif room.transport == "webrtc":
            why = "peers are in the room on signaling, but none synced with us"
        else:
            why = "connected, but the server sent no sync step 2"
        raise JoinError(f"not in sync with {room.room} within {seconds}s: {why}") from None


async def _write(room: Classroom, name: str, values: dict[str, Any], seconds: float) -> None:
    target = room.doc.get(name, type=pycrdt.Map)
    for key, value in values.items():
        target[key] = value
    try:
        async with asyncio.timeout(seconds):
            await room.flush()
    except TimeoutError:
        raise JoinError(f"could not send the change within {seconds}s") from None
    print(f"wrote {', '.join(values)} into {name!r} via {room.transport}", flush=True)
    if room.links:
        return
    if room.transport == "webrtc":
        note = (
            f"no peer is in {room.room}, so nobody received it (a WebRTC room lives in its members)"
        )
    else:
        note = f"the connection to the server dropped: not sent ({room.problem})"
    print(f"edrys-relay join: warning: {note}", file=sys.stderr, flush=True)


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
    link = _LinkReport(room)
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
            link.report()
    finally:
        room.doc.unobserve(subscription)


class _LinkReport:
    """Says on stderr when the connection to the server drops, why retries fail, and when it is
    back; once per change, not once per retry."""

    def __init__(self, room: Classroom) -> None:
        self.room = room
        self.connected = room.connected
        self.problem = room.problem

    def report(self) -> None:
        connected, problem = self.room.connected, self.room.problem
        if connected and not self.connected:
            _status(f"connected again via {self.room.transport}")
        elif not connected and (self.connected or problem != self.problem):
            _status(f"connection lost: {problem or 'closed'}; reconnecting")
        self.connected, self.problem = connected, problem


def _status(text: str) -> None:
    print(f"edrys-relay join: {text}", file=sys.stderr, flush=True)


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
