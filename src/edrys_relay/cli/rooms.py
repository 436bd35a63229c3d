"""Offline room commands on the SQLite store: ``rooms``, ``export``, ``import``, ``compact``.

They open the database directly (docs/storage.md "Room commands"), so they are meant for a
stopped server or a copy of its data directory.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edrys_relay.cli.common import DEFAULTS, Commands, add_data_dir_flag
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.routing import RoomName, validate_room_name
from edrys_relay.storage.base import Store, StoreError

RoomCommand = Callable[[Store, argparse.Namespace], int]


OFFLINE = (
    "Works on the SQLite database in --data-dir directly: meant for a stopped server or a copy"
    " of its data directory (docs/storage.md)."
)
ROOM_HELP = "room name: the Yjs document name (Edrys: classroom id + hash)"


def add_parsers(commands: Commands) -> None:
    rooms = commands.add_parser(
        "rooms",
        help="list stored rooms",
        description=f"List the stored rooms: records, bytes, last activity. {OFFLINE}",
    )
    add_data_dir_flag(rooms)
    rooms.set_defaults(run=_offline("rooms", _list_rooms))

    export = commands.add_parser(
        "export",
        help="write a room as one Yjs update (Y.applyUpdate accepts it)",
        description=f"Write ROOM's document as one Yjs v1 update, byte-faithful. {OFFLINE}",
    )
    export.add_argument("room", metavar="ROOM", help=ROOM_HELP)
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    add_data_dir_flag(export)
    export.set_defaults(run=_offline("export", _export_room))

    imp = commands.add_parser(
        "import",
        help="add a Yjs update file to a room",
        description=f"Check FILE as a Yjs v1 update and append it to ROOM. {OFFLINE}",
    )
    imp.add_argument("room", metavar="ROOM", help=ROOM_HELP)
    imp.add_argument("file", metavar="FILE", help="a Yjs v1 update, e.g. from edrys-relay export")
    add_data_dir_flag(imp)
    imp.set_defaults(run=_offline("import", _import_room))

    compact = commands.add_parser(
        "compact",
        help="merge the history of one room or of all",
        description="Merge the history of ROOM, or of every stored room when ROOM is left out,"
        f" into one record; records the decoder refuses are quarantined. {OFFLINE}",
    )
    compact.add_argument(
        "room", metavar="ROOM", nargs="?", help=f"{ROOM_HELP} (default: every stored room)"
    )
    add_data_dir_flag(compact)
    compact.set_defaults(run=_offline("compact", _compact_rooms))


def _open_sqlite(args: argparse.Namespace) -> Store:
    from edrys_relay.storage.sqlite import DB_FILENAME, SQLiteStore

    try:
        present = (Path(args.data_dir) / DB_FILENAME).is_file()
    except OSError as exc:
        raise StoreError(f"cannot read data directory {args.data_dir}: {exc.strerror}") from None
    if not present:
        raise StoreError(f"no database in {args.data_dir} (see --data-dir)")
    return SQLiteStore(Path(args.data_dir))


def _room_arg(name: str) -> RoomName:
    try:
        return validate_room_name(name, DEFAULTS.max_room_name)
    except ProtocolError as exc:
        raise StoreError(f"bad room name {name!r}: {exc}") from None


def _offline(command: str, body: RoomCommand) -> Callable[[argparse.Namespace], int]:
    """Run ``body`` on the store, turning storage and input problems into one-line messages."""

    def run(args: argparse.Namespace) -> int:
        from edrys_relay import admin

        try:
            store = _open_sqlite(args)
        except StoreError as exc:
            print(f"edrys-relay {command}: {exc}", file=sys.stderr)
            return 1
        try:
            return body(store, args)
        except admin.NoSuchRoom as exc:
            print(f"edrys-relay {command}: no stored room named {exc}", file=sys.stderr)
        except (StoreError, ProtocolError, OSError) as exc:
            print(f"edrys-relay {command}: {exc}", file=sys.stderr)
        finally:
            store.close()
        return 1

    return run


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

    names = [_room_arg(args.room)] if args.room is not None else [i.name for i in store.rooms()]
    for name in names:
        done = compact_room(store, name)
        note = f", {done.quarantined} quarantined" if done.quarantined else ""
        print(
            f"{name}: {done.records_before} records / {done.bytes_before} bytes -> "
            f"{done.records_after} / {done.bytes_after}{note}"
        )
    return 0


__all__ = ["add_parsers"]
