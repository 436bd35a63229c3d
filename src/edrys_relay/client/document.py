"""A pycrdt document kept in sync over y-protocols messages, serving only original bytes.

Fidelity (protocols.md §2.9): Yrs re-encodes JSON values with reordered keys, so what we send to
peers is never a pycrdt encoding of the document. We keep a log of the raw updates we received
(those that added something) and the raw updates our own transactions produced, and answer a
peer's sync step 1 with ``diff_update(merge_updates(log), peer_sv)`` from the byte-faithful codec
(:mod:`edrys_relay.protocol.yupdate`, which copies content bytes). Answering compacts the log into
that one merged update. Should the codec refuse something pycrdt accepted, we serve the raw log
instead: every update as ``[0,2,u]``, then an empty step 2 (strategy (a) of §2.9).

Both transports share this class; it does no I/O. :meth:`SharedDocument.handle` takes one
y-protocols message from one link and returns what to send back and what to pass on to the other
links (WebRTC gossip).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pycrdt

from edrys_relay.client.awareness import Awareness
from edrys_relay.protocol.errors import InvalidPayload, MalformedMessage
from edrys_relay.protocol.lib0 import Decoder
from edrys_relay.protocol.yjs import (
    EMPTY_STATE_VECTOR,
    EMPTY_UPDATE,
    AwarenessMessage,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
)
from edrys_relay.protocol.yupdate import (
    ParsedUpdate,
    diff_update,
    merge_updates,
    parse_update,
    update_extent,
)

logger = logging.getLogger(__name__)

# pyo3 turns Rust panics into PanicException, which derives from BaseException.
_NOT_PANICS = (KeyboardInterrupt, SystemExit, GeneratorExit)

LocalUpdateListener = Callable[[bytes], None]


@dataclass(slots=True)
class Outcome:
    """What handling one message produced."""

    replies: list[bytes] = field(default_factory=list)
    """Messages for the link the message came from."""
    relay: bytes | None = None
    """A message for every other link (an update or awareness change that was new to us)."""
    synced: bool = False
    """The message was a sync step 2: this link is now in sync."""
    unknown: int | None = None
    """The message type, when it is not a y-protocols type (e.g. Edrys 42-44 on WebRTC)."""


class SharedDocument:
    """A pycrdt ``Doc`` plus the raw update log and the awareness of one classroom.

    A ``doc`` passed in with content already in it is logged as pycrdt encodes it (there are no
    original bytes for it); everything after that is logged as written or received.
    """

    def __init__(self, doc: pycrdt.Doc[Any] | None = None) -> None:
        self.doc: pycrdt.Doc[Any] = doc if doc is not None else pycrdt.Doc()
        self.awareness = Awareness(self.doc.client_id)
        self._log: list[bytes] = []
        self._served: ParsedUpdate | None = None
        self._applying = False
        self._changed = False
        self._local_listeners: list[LocalUpdateListener] = []
        self._subscription = self.doc.observe(self._on_transaction)
        if self.doc.get_state() != EMPTY_STATE_VECTOR:
            # content from before we watched has no original bytes: serve pycrdt's encoding of it
            self._append(bytes(self.doc.get_update()))

    # -- the log ------------------------------------------------------------------------------

    @property
    def log(self) -> list[bytes]:
        """The original updates served to peers, oldest first (a copy; compacted by serving)."""
        return list(self._log)

    def add_local_listener(self, listener: LocalUpdateListener) -> None:
        """Call ``listener`` with ``[0,2,update]`` for each transaction made locally."""
        self._local_listeners.append(listener)

    def _on_transaction(self, event: pycrdt.TransactionEvent) -> None:
        self._changed = True
        if self._applying:
            return
        update = bytes(event.update)
        self._append(update)
        message = encode_sync_update(update)
        for listener in self._local_listeners:
            listener(message)

    def apply_remote(self, update: bytes) -> bool:
        """Apply a received update; log and return True if it was new to us.

        Raises:
            InvalidPayload: the Yjs decoder rejected it.
        """
        before = self.doc.get_state()
        self._changed = False
        self._applying = True
        try:
            self.doc.apply_update(update)
        except BaseException as exc:
            if isinstance(exc, _NOT_PANICS):
                raise
            raise InvalidPayload(f"Yjs update rejected: {type(exc).__name__}") from exc
        finally:
            self._applying = False
        if not (self._changed or _reaches_past(update, before)):
            return False
        self._append(update)
        return True

    def _append(self, update: bytes) -> None:
        self._log.append(update)
        self._served = None

    def sync_step1(self) -> bytes:
        return encode_sync_step1(self.doc.get_state())

    def answer_step1(self, state_vector: bytes) -> list[bytes]:
        """The reply to a peer's step 1: a step 2 with what it lacks, from original bytes.

        Raises:
            MalformedMessage: the state vector does not decode.
        """
        served = self._compacted()
        if served is None:
            return [encode_sync_update(u) for u in self._log] + [encode_sync_step2(EMPTY_UPDATE)]
        return [encode_sync_step2(diff_update(served, state_vector))]

    def _compacted(self) -> ParsedUpdate | None:
        """The log merged into one parsed update (cached until the log grows)."""
        if self._served is None:
            try:
                merged = self._log[0] if len(self._log) == 1 else merge_updates(self._log)
                self._served = parse_update(merged)
            except MalformedMessage as exc:
                logger.warning("update codec refused the log (%s); serving it raw", exc)
                return None
            self._log = [merged]
        return self._served

    # -- messages -----------------------------------------------------------------------------

    def handle(self, message: bytes, now: float) -> Outcome:
        """Handle one y-protocols message from a link.

        Raises:
            ProtocolError: a malformed message or a rejected update.
        """
        decoded = decode_message(message)
        outcome = Outcome()
        if isinstance(decoded, SyncStep1):
            outcome.replies = self.answer_step1(decoded.state_vector)
        elif isinstance(decoded, (SyncStep2, SyncUpdate)):
            if self.apply_remote(decoded.update):
                outcome.relay = encode_sync_update(decoded.update)
            outcome.synced = isinstance(decoded, SyncStep2)
        elif isinstance(decoded, AwarenessMessage):
            changed, heal = self.awareness.apply(decoded.update, now)
            if changed:
                outcome.relay = message
            if heal is not None:
                outcome.replies.append(encode_awareness(heal))
        elif isinstance(decoded, QueryAwareness):
            outcome.replies.append(encode_awareness(self.awareness.encode_all()))
        else:
            outcome.unknown = Decoder(message).read_var_uint()
        return outcome


def _reaches_past(update: bytes, state_vector: bytes) -> bool:
    """True if the update holds structs or deletes beyond ``state_vector`` (pending content)."""
    decoder = Decoder(state_vector)
    known = {}
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        known[client] = decoder.read_var_uint()
    return any(clock > known.get(client, 0) for client, clock in update_extent(update).items())


__all__ = ["LocalUpdateListener", "Outcome", "SharedDocument"]
