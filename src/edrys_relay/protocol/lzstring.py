"""LZString ``compressToEncodedURIComponent`` (lz-string 1.5.0), compression direction only.

Edrys-Lite puts a classroom's communication settings into the link as
``#comm=<compressToEncodedURIComponent(JSON)>`` (protocols.md §5.2). The server only needs to
*make* such links (for its start-up banner), so this module implements the compressor: LZW over
UTF-16 code units, emitted 6 bits per character in the URI-safe alphabet. Tests compare it with
the npm package's output.
"""

from __future__ import annotations

URI_SAFE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-$"
_BITS_PER_CHAR = 6


class _BitWriter:
    """Packs bits most-significant first into 6-bit characters, as lz-string does."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self._value = 0
        self._position = 0

    def write(self, value: int, bits: int) -> None:
        """Write ``bits`` bits of ``value``, least significant bit first (lz-string order)."""
        for _ in range(bits):
            self._push(value & 1)
            value >>= 1

    def _push(self, bit: int) -> None:
        self._value = (self._value << 1) | bit
        if self._position == _BITS_PER_CHAR - 1:
            self.chars.append(URI_SAFE_ALPHABET[self._value])
            self._position = 0
            self._value = 0
        else:
            self._position += 1

    def finish(self) -> str:
        while True:
            self._value <<= 1
            if self._position == _BITS_PER_CHAR - 1:
                self.chars.append(URI_SAFE_ALPHABET[self._value])
                return "".join(self.chars)
            self._position += 1


class _Compressor:
    def __init__(self) -> None:
        self.out = _BitWriter()
        self.dictionary: dict[str, int] = {}
        self.to_create: set[str] = set()
        self.dict_size = 3
        self.num_bits = 2
        self.enlarge_in = 2

    def _count_down(self) -> None:
        self.enlarge_in -= 1
        if self.enlarge_in == 0:
            self.enlarge_in = 2**self.num_bits
            self.num_bits += 1

    def emit(self, w: str) -> None:
        """Output the code for phrase ``w`` (a new single unit is sent literally first)."""
        if w in self.to_create:
            unit = ord(w[0])
            if unit < 256:
                self.out.write(0, self.num_bits)
                self.out.write(unit, 8)
            else:
                self.out.write(1, self.num_bits)
                self.out.write(unit, 16)
            self._count_down()
            self.to_create.discard(w)
        else:
            self.out.write(self.dictionary[w], self.num_bits)
        self._count_down()

    def compress(self, units: list[str]) -> str:
        w = ""
        for c in units:
            if c not in self.dictionary:
                self.dictionary[c] = self.dict_size
                self.dict_size += 1
                self.to_create.add(c)
            wc = w + c
            if wc in self.dictionary:
                w = wc
                continue
            self.emit(w)
            self.dictionary[wc] = self.dict_size
            self.dict_size += 1
            w = c
        if w:
            self.emit(w)
        self.out.write(2, self.num_bits)
        return self.out.finish()


def compress_to_encoded_uri_component(text: str) -> str:
    """Return what lz-string's ``compressToEncodedURIComponent(text)`` returns."""
    raw = text.encode("utf-16-le")
    units = [chr(int.from_bytes(raw[i : i + 2], "little")) for i in range(0, len(raw), 2)]
    return _Compressor().compress(units)


__all__ = ["URI_SAFE_ALPHABET", "compress_to_encoded_uri_component"]
