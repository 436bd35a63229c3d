"""The regression corpus of known crashers (``corpus/known-crashers.txt``, docs/threats.md B5)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FILE = Path(__file__).parent / "corpus" / "known-crashers.txt"


@dataclass(frozen=True)
class Crasher:
    name: str
    door: str
    """``yjs`` (a binary frame on a room) or ``signaling`` (a text frame)."""
    close_code: int
    frame: bytes
    source: str


def known_crashers() -> list[Crasher]:
    crashers = []
    for line in FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields, _, source = line.partition("#")
        name, door, code, hexed = fields.split()
        crashers.append(Crasher(name, door, int(code), bytes.fromhex(hexed), source.strip()))
    return crashers
