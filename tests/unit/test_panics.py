"""A Rust panic in Yrs surfaces as pyo3's PanicException, a BaseException (docs/threats.md V4).

It must become the documented InvalidPayload (close 1007 for the sender), while the
interpreter's own exits still propagate.
"""

from __future__ import annotations

import pycrdt
import pytest

from edrys_relay.protocol.errors import InvalidPayload
from edrys_relay.protocol.ydoc import TrackedDoc


class PanicException(BaseException):
    """Stands in for ``pyo3_runtime.PanicException`` (not importable by name)."""


def raising(error: BaseException):  # type: ignore[no-untyped-def]
    def apply_update(self: pycrdt.Doc, update: bytes) -> None:  # type: ignore[type-arg]
        raise error

    return apply_update


@pytest.mark.parametrize("error", [PanicException("index out of bounds"), ValueError("bad")])
def test_decoder_panics_become_invalid_payload(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    doc = TrackedDoc()
    monkeypatch.setattr(pycrdt.Doc, "apply_update", raising(error))
    with pytest.raises(InvalidPayload):
        doc.apply(b"\x00\x00")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
def test_interpreter_exits_are_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    doc = TrackedDoc()
    monkeypatch.setattr(pycrdt.Doc, "apply_update", raising(error))
    with pytest.raises(type(error)):
        doc.apply(b"\x00\x00")
