"""Where room histories live: the :class:`~edrys_relay.storage.base.Store` backends."""

from __future__ import annotations

from pathlib import Path

from edrys_relay.config import Settings
from edrys_relay.storage.base import Store


def open_store(settings: Settings) -> Store:
    """Open the backend ``settings.store`` names (does I/O: call it off the event loop).

    Raises:
        StoreError: the database cannot be opened (or has a newer schema).
    """
    if settings.store == "memory":
        from edrys_relay.storage.memory import MemoryStore

        return MemoryStore()
    from edrys_relay.storage.sqlite import SQLiteStore

    return SQLiteStore(Path(settings.data_dir), synchronous=settings.sqlite_synchronous)


__all__ = ["open_store"]
