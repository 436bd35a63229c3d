"""A thin, safe wrapper around a pycrdt document, used only to validate and track state.

pycrdt/Yrs re-encodes JSON values with reordered keys (protocols.md §2.9), so nothing this
module produces is ever served as document content: it answers "is this update valid?",
"did it add anything?" and "what is the state vector?". Served bytes are always the
writers' own.
"""

from __future__ import annotations

from typing import Any

import pycrdt

from edrys_relay.protocol import yupdate
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage, ProtocolError
from edrys_relay.protocol.history import Record

# pyo3 turns Rust panics into PanicException, which derives from BaseException (docs/threats.md V4).
_NOT_PANICS = (KeyboardInterrupt, SystemExit, GeneratorExit)


class TrackedDoc:
    """A pycrdt Doc that reports whether each applied update mattered."""

    __slots__ = ("_changed", "_doc", "_state_vector", "_subscription")

    def __init__(self) -> None:
        self._doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self._changed = False
        self._state_vector: bytes | None = None
        self._subscription = self._doc.observe(self._on_transaction)

    def _on_transaction(self, _event: pycrdt.TransactionEvent) -> None:
        self._changed = True
        self._state_vector = None

    def close(self) -> None:
        """Remove the change observer: pycrdt 0.14 never frees an observed Doc otherwise."""
        self._doc.unobserve(self._subscription)

    def state_vector(self) -> bytes:
        """The document's state vector, cached until a transaction changes the document."""
        if self._state_vector is None:
            self._state_vector = bytes(self._doc.get_state())
        return self._state_vector

    def apply(self, update: bytes, parsed: yupdate.ParsedUpdate | None = None) -> bool:
        """Apply an update; True if it changed the document or left content pending.

        An update whose dependencies have not arrived yet changes nothing visible and fires no
        event, yet it must be kept and relayed or its content would be lost to everyone else.

        Raises:
            InvalidPayload: the Yjs decoder rejected the update (including Rust panics).
        """
        try:
            self._changed = False
            self._state_vector = None  # recomputed on demand after any apply
            self._doc.apply_update(update)
        except BaseException as exc:
            if isinstance(exc, _NOT_PANICS):
                raise
            raise InvalidPayload(f"Yjs update rejected: {type(exc).__name__}") from exc
        if self._changed:
            return True
        # Rare path (duplicates, pending content): does the update reach past our state?
        doc_sv = yupdate.decode_state_vector(self.state_vector())
        extent = yupdate.update_extent(update if parsed is None else parsed)
        return any(clock > doc_sv.get(client, 0) for client, clock in extent.items())


def check_update(doc: TrackedDoc, update: bytes) -> bool:
    """Validate ``update`` with the codec, then apply it to ``doc``; True if it mattered.

    The codec check comes first, so neither the document nor storage ever takes an update that
    could not be merged or served later (the codec is slightly stricter than yjs on inputs no
    Yjs writer produces, docs/yupdate.md "Stricter validation").

    Raises:
        InvalidPayload: the codec or the Yjs decoder rejected the update.
    """
    try:
        parsed = yupdate.parse_update(update)
    except MalformedMessage as exc:
        raise InvalidPayload(f"Yjs update rejected: {exc}") from exc
    return doc.apply(update, parsed)


def replay(records: list[Record]) -> tuple[TrackedDoc, list[Record], list[Record]]:
    """Check and apply stored records to a fresh document (slow for long histories: call it
    in a thread).

    Returns the document, the records it accepted and the ones it refused (poison records,
    docs/threats.md F10), so one bad record never keeps a room from loading.
    """
    doc = TrackedDoc()
    good: list[Record] = []
    bad: list[Record] = []
    for record in records:
        try:
            check_update(doc, record.update)
        except ProtocolError:
            bad.append(record)
        else:
            good.append(record)
    return doc, good, bad


__all__ = ["TrackedDoc", "check_update", "replay"]
