"""Fuzz targets: each takes raw input and may raise only the documented error type.

The contract (docs/threats.md B6): every input is accepted or rejected with
:class:`~edrys_relay.protocol.errors.ProtocolError`; nothing else escapes, nothing hangs, and
memory stays bounded (every length is checked against the remaining input). The pycrdt target
runs only in a subprocess (``python -m fuzz.run pycrdt``): a Yrs allocation abort (y-crdt#415)
cannot be caught and would take the fuzzing process with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pycrdt

from edrys_relay.protocol import signaling, stream, yjs
from edrys_relay.protocol.awareness import (
    AwarenessEntry,
    decode_awareness_update,
    encode_awareness_update,
)
from edrys_relay.protocol.errors import ProtocolError
from edrys_relay.protocol.ydoc import TrackedDoc
from edrys_relay.protocol.yupdate import (
    diff_update,
    merge_updates,
    parse_update,
    state_vector_from_update,
    update_extent,
)

Target = Callable[[bytes], None]


def y_websocket_message(data: bytes) -> None:
    """The y-websocket envelope, then the payload decoder of each message kind."""
    message = yjs.decode_message(data)
    if isinstance(message, yjs.AwarenessMessage):
        awareness_update(message.update)
    elif isinstance(message, yjs.SyncUpdate | yjs.SyncStep2):
        yjs_update_scan(message.update)


def awareness_update(data: bytes) -> None:
    decode_awareness_update(data, max_entries=8, max_state_bytes=64 * 1024)


def signaling_frame(data: bytes) -> None:
    signaling.decode_signaling(data.decode("utf-8", errors="replace"), max_topic_length=1024)


def stream_message(data: bytes) -> None:
    """The ``/stream`` parser, as a binary and as a text message (it never raises)."""
    stream.decode_stream_message(data, max_room_id=256)
    stream.decode_stream_message(data.decode("utf-8", errors="replace"), max_room_id=256)


def yjs_update_scan(data: bytes) -> None:
    """The clock extent of a Yjs v1 update (``protocol/yupdate.py``: ``update_extent``)."""
    update_extent(data)


def yjs_update_codec(data: bytes) -> None:
    """The update codec of ``protocol/yupdate.py``: parse, state vector, diff and merge."""
    parsed = parse_update(data)
    state_vector = state_vector_from_update(parsed)
    diff_update(parsed, state_vector)
    diff_update(parsed, data)  # the input as a (hostile) state vector
    merge_updates([data, seed_updates()[0]])


def pycrdt_apply(data: bytes) -> None:
    """The pycrdt/Yrs decoder behind :class:`TrackedDoc` (subprocess only, see module doc)."""
    TrackedDoc().apply(data)


IN_PROCESS: dict[str, Target] = {
    "y-websocket": y_websocket_message,
    "awareness": awareness_update,
    "signaling": signaling_frame,
    "stream": stream_message,
    "yjs-update-scan": yjs_update_scan,
    "yjs-update-codec": yjs_update_codec,
}
SUBPROCESS: dict[str, Target] = {"pycrdt": pycrdt_apply}


def run(target: Target, data: bytes) -> None:
    """Call ``target``; the only allowed failure is a ProtocolError."""
    with contextlib.suppress(ProtocolError):
        target(data)


@cache
def seed_updates() -> tuple[bytes, ...]:
    """Valid Yjs updates with every common content kind, to mutate from."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(bytes(event.update)))
    text = doc.get("text", type=pycrdt.Text)
    text += "héllo wörld 😀"
    del text[0:3]
    shared = doc.get("map", type=pycrdt.Map)
    shared["json"] = {"a": [1, 2.5, None, True, "x"], "b": {"c": -7}}
    shared["nested"] = pycrdt.Map({"k": "v"})
    shared["bytes"] = b"\x00\x01\xff"
    array = doc.get("array", type=pycrdt.Array)
    array.extend([1, "two", {"three": 3}])
    del array[1]
    return (*updates, bytes(doc.get_update()))


@cache
def seeds(name: str) -> tuple[bytes, ...]:
    """Valid inputs for a target."""
    updates = seed_updates()
    state = '{"user":{"name":"teacher","color":"#f00"},"cursor":null}'
    aware = encode_awareness_update([AwarenessEntry(1, 3, state), AwarenessEntry(2, 1, "null")])
    if name in ("yjs-update-scan", "yjs-update-codec", "pycrdt"):
        return updates
    if name == "awareness":
        return (aware,)
    if name == "stream":
        jpeg = b"\xff\xd8\xff\xe0" + bytes(range(64))
        return (
            b'{"type":"register-source","roomId":"lab"}',
            b'{"type":"join-room","roomId":"lab","binary":true}',
            b'{"type":"frame","data":"data:image/jpeg;base64,/9j/4AAQ","timestamp":1}',
            b'{"type":"ping","timestamp":5}',
            stream.encode_binary_frame(stream.ImageFormat.JPEG, jpeg, 1.5),
        )
    if name == "signaling":
        return (
            b'{"type":"subscribe","topics":["room-a","room-b"]}',
            b'{"type":"publish","topic":"room-a","data":{"type":"announce","from":"x"}}',
            b'{"type":"ping"}',
        )
    return (
        *(yjs.encode_sync_update(u) for u in updates),
        yjs.encode_sync_step2(updates[-1]),
        yjs.encode_sync_step1(b"\x01\x05\x09"),
        yjs.encode_awareness(aware),
        yjs.encode_query_awareness(),
        yjs.encode_auth_denied("no"),
    )


__all__ = ["IN_PROCESS", "SUBPROCESS", "Target", "run", "seed_updates", "seeds"]
