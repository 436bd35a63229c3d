"""Real Yjs updates for server tests, made with pycrdt on the client side of the test."""

from __future__ import annotations

import pycrdt


def text_updates(*chunks: str, client_id: int | None = None) -> list[bytes]:
    """One update per appended chunk of a Y.Text named ``t``."""
    doc = pycrdt.Doc(client_id=client_id) if client_id is not None else pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(bytes(event.update)))
    text = doc.get("t", type=pycrdt.Text)
    for chunk in chunks:
        text += chunk
    return updates


def text_of(updates: list[bytes]) -> str:
    doc = pycrdt.Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=pycrdt.Text))


def independent_updates(count: int, size: int) -> list[bytes]:
    """``count`` updates from separate clients, each filling its own root text."""
    updates = []
    for i in range(count):
        doc = pycrdt.Doc()
        doc.get(f"t{i}", type=pycrdt.Text).insert(0, "y" * size)
        updates.append(bytes(doc.get_update()))
    return updates
