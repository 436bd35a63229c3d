"""The default store: one SQLite database (WAL, ``synchronous=FULL``) in the data directory.

Durability (docs/threats.md F1, F2): with WAL and ``synchronous=FULL`` (the default) a committed
transaction survives a crash of the process and a power loss; with ``synchronous=NORMAL``
(``--sqlite-synchronous normal``) it survives a crash of the process, and a power loss may take
the last ones (sqlite.org/pragma.html#pragma_synchronous).
The schema version lives in ``PRAGMA user_version``; a database written by a newer version is
refused with :class:`SchemaTooNew`, never rewritten. The writer thread and the loader thread
each own one connection; SQLite serialises them.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from edrys_relay.protocol.routing import RoomName
from edrys_relay.storage.base import Record, RoomInfo, SchemaTooNew, StoreError

SCHEMA_VERSION = 1
DB_FILENAME = "edrys-relay.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    merged INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_room ON records (room, seq);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    data BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""


def prepare_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` if needed and check that we may write there.

    Raises:
        StoreError: naming the directory and the real cause (a file in the way, no permission).
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise StoreError(f"data directory {data_dir} is a file, not a directory") from None
    except NotADirectoryError:
        raise StoreError(f"data directory {data_dir}: a part of its path is a file") from None
    except OSError as exc:
        raise StoreError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
    try:
        tempfile.TemporaryFile(dir=data_dir).close()  # permissions, read-only mounts, quotas
    except OSError as exc:
        raise StoreError(f"cannot write in data directory {data_dir}: {exc.strerror}") from None


class SQLiteStore:
    """Room histories in ``<data_dir>/edrys-relay.sqlite3``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        busy_timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        self.path = Path(data_dir) / DB_FILENAME
        self._synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]
        self._clock = clock
        self._busy_ms = int(busy_timeout_seconds * 1000)
        prepare_data_dir(Path(data_dir))
        try:
            self._write = self._connect()
            self._migrate()
            self._read = self._connect()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _migrate(self) -> None:
        version = self._write.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {version}, but this edrys-relay understands "
                f"only up to {SCHEMA_VERSION}: upgrade edrys-relay or use another --data-dir"
            )
        if version == 0:
            self._write.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, _errors(), self._transaction(self._write):
            yield self._write

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock, _errors():
            yield self._read

    def load(self, room: RoomName) -> list[Record]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, data, merged FROM records WHERE room = ? ORDER BY seq", (room,)
            ).fetchall()
        return [Record(seq, bytes(data), bool(merged)) for seq, data, merged in rows]

    def append(self, updates: Sequence[tuple[RoomName, bytes]]) -> list[int]:
        now = self._clock()
        seqs = []
        with self._writing() as conn:
            for room, update in updates:
                cursor = conn.execute(
                    "INSERT INTO records (room, data, at) VALUES (?, ?, ?)", (room, update, now)
                )
                assert cursor.lastrowid is not None
                seqs.append(cursor.lastrowid)
        return seqs

    def replace(self, room: RoomName, seqs: Sequence[int], merged: bytes) -> int:
        seq = max(seqs)
        with self._writing() as conn:
            conn.executemany(
                "DELETE FROM records WHERE room = ? AND seq = ?", [(room, s) for s in seqs]
            )
            conn.execute(
                "INSERT INTO records (seq, room, merged, data, at) VALUES (?, ?, 1, ?, ?)",
                (seq, room, merged, self._clock()),
            )
        return seq

    def quarantine(self, room: RoomName, seqs: Sequence[int], reason: str) -> None:
        now = self._clock()
        with self._writing() as conn:
            for seq in seqs:
                conn.execute(
                    "INSERT OR REPLACE INTO quarantine (seq, room, data, reason, at) "
                    "SELECT seq, room, data, ?, ? FROM records WHERE room = ? AND seq = ?",
                    (reason, now, room, seq),
                )
                conn.execute("DELETE FROM records WHERE room = ? AND seq = ?", (room, seq))

    def quarantined(self, room: RoomName) -> list[Record]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, data FROM quarantine WHERE room = ? ORDER BY seq", (room,)
            ).fetchall()
        return [Record(seq, bytes(data)) for seq, data in rows]

    def rooms(self) -> list[RoomInfo]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT room, COUNT(*), SUM(LENGTH(data)), MAX(at) FROM records "
                "GROUP BY room ORDER BY room"
            ).fetchall()
        return [RoomInfo(RoomName(name), n, size, at) for name, n, size, at in rows]

    def delete(self, room: RoomName) -> bool:
        with self._writing() as conn:
            return conn.execute("DELETE FROM records WHERE room = ?", (room,)).rowcount > 0

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._read.close()
            self._write.close()


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{type(exc).__name__}: {exc}") from exc


__all__ = ["DB_FILENAME", "SCHEMA_VERSION", "SQLiteStore"]
