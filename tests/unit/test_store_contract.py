"""One contract, every backend: memory and SQLite behave the same (storage/base.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edrys_relay.cli import build_parser
from edrys_relay.config import Settings
from edrys_relay.protocol.routing import RoomName
from edrys_relay.storage import open_store
from edrys_relay.storage.base import Record, SchemaTooNew, Store, StoreError
from edrys_relay.storage.memory import MemoryStore
from edrys_relay.storage.sqlite import DB_FILENAME, SCHEMA_VERSION, SQLiteStore

A = RoomName("room-a")
B = RoomName("room-b")


class Clock:
    """A wall clock the test steps, backwards too (docs/threats.md F11)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def make(clock: Callable[[], float] | None = None) -> Store:
        kwargs = {"clock": clock} if clock else {}
        store: Store = (
            MemoryStore(**kwargs) if request.param == "memory" else SQLiteStore(tmp_path, **kwargs)
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def test_unknown_room_is_empty(store: Store) -> None:
    assert store.load(A) == []
    assert store.rooms() == []
    assert store.delete(A) is False


def test_append_returns_increasing_seqs_and_load_keeps_order(store: Store) -> None:
    seqs = store.append([(A, b"1"), (B, b"x"), (A, b"2")])
    seqs += store.append([(A, b"3")])
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert [r.update for r in store.load(A)] == [b"1", b"2", b"3"]
    assert [r.seq for r in store.load(A)] == [seqs[0], seqs[2], seqs[3]]
    assert store.load(B) == [Record(seqs[1], b"x")]


def test_binary_content_and_odd_names_are_kept_exactly(store: Store) -> None:
    names = [RoomName(n) for n in ("../x", "/etc/passwd", "C:\\x", "a'b\"c;--", "%2e%2e")]
    blob = bytes(range(256)) * 3
    store.append([(name, blob) for name in names])
    for name in names:
        assert [r.update for r in store.load(name)] == [blob]
    assert sorted(info.name for info in store.rooms()) == sorted(names)


def test_replace_swaps_exactly_the_listed_records(store: Store) -> None:
    s1, s2, s3 = store.append([(A, b"1"), (A, b"2"), (A, b"3")])
    merged_seq = store.replace(A, [s1, s2], b"12")
    (s4,) = store.append([(A, b"4")])
    assert merged_seq == s2
    assert store.load(A) == [Record(s2, b"12", merged=True), Record(s3, b"3"), Record(s4, b"4")]
    again = store.replace(A, [s2, s3, s4], b"1234")
    assert store.load(A) == [Record(again, b"1234", merged=True)]


def test_replace_keeps_records_appended_meanwhile(store: Store) -> None:
    seqs = store.append([(A, b"1"), (A, b"2")])
    store.append([(A, b"late")])  # arrived while the merge of seqs ran
    store.replace(A, seqs, b"12")
    assert [r.update for r in store.load(A)] == [b"12", b"late"]


def test_rooms_reports_counts_sizes_and_activity(make_store: Callable[..., Store]) -> None:
    clock = Clock()
    store = make_store(clock)
    store.append([(A, b"abc"), (B, b"d")])
    clock.now -= 3600  # a clock step backwards changes nothing but the reported time
    store.append([(A, b"ef")])
    infos = {info.name: info for info in store.rooms()}
    assert (infos[A].records, infos[A].size_bytes) == (2, 5)
    assert (infos[B].records, infos[B].size_bytes) == (1, 1)
    assert [r.update for r in store.load(A)] == [b"abc", b"ef"]


def test_delete_forgets_one_room(store: Store) -> None:
    store.append([(A, b"1"), (B, b"2")])
    assert store.delete(A) is True
    assert store.load(A) == [] and [r.update for r in store.load(B)] == [b"2"]
    assert [info.name for info in store.rooms()] == [B]


def test_quarantine_moves_records_aside(store: Store) -> None:
    good, bad = store.append([(A, b"good"), (A, b"bad")])
    store.quarantine(A, [bad], "refused on load")
    assert store.load(A) == [Record(good, b"good")]
    assert store.quarantined(A) == [Record(bad, b"bad")]
    assert store.quarantined(B) == []


def test_concurrent_reader_and_writer(store: Store) -> None:
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(200):
                updates = [r.update for r in store.load(A)]
                assert updates == sorted(updates, key=int)
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(200):
        store.append([(A, str(i).encode())])
    reader.join(timeout=30)
    assert not errors and not reader.is_alive()
    assert len(store.load(A)) == 200


# -- SQLite specifics ---------------------------------------------------------------------------


def test_sqlite_survives_reopen_and_uses_wal_full(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path)
    store.append([(A, b"kept")])
    store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    reopened = SQLiteStore(tmp_path)
    assert [r.update for r in reopened.load(A)] == [b"kept"]
    assert reopened._write.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    reopened.close()


def test_sqlite_synchronous_normal_is_opt_in_from_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--sqlite-synchronous (env EDRYS_RELAY_SQLITE_SYNCHRONOUS) reaches both connections."""
    assert build_parser().parse_args(["serve"]).sqlite_synchronous == "full"
    monkeypatch.setenv("EDRYS_RELAY_SQLITE_SYNCHRONOUS", "normal")
    args = build_parser().parse_args(["serve"])
    assert args.sqlite_synchronous == "normal"
    store = open_store(Settings(data_dir=str(tmp_path), sqlite_synchronous="normal"))
    assert isinstance(store, SQLiteStore)
    for conn in (store._write, store._read):
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def test_sqlite_refuses_a_newer_schema_untouched(tmp_path: Path) -> None:
    SQLiteStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = (tmp_path / DB_FILENAME).read_bytes()
    with pytest.raises(SchemaTooNew, match=r"schema version 2.*upgrade edrys-relay"):
        SQLiteStore(tmp_path)
    assert (tmp_path / DB_FILENAME).read_bytes() == before


def test_sqlite_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        SQLiteStore(tmp_path)


def test_sqlite_room_names_never_become_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SQLiteStore(data)
    store.append([(RoomName("../escape"), b"1"), (RoomName("/tmp/abs"), b"2")])
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert {p.name for p in data.iterdir()} <= {
        DB_FILENAME,
        f"{DB_FILENAME}-wal",
        f"{DB_FILENAME}-shm",
    }
