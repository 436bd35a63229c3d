"""The Origin allow-list (CWE-1385, docs/threats.md V12 and A5).

Browsers send the serialised origin of the page: ``scheme://host[:port]`` in lower case, the
default port left out. An allowed origin must be written in that exact form, and a request's
``Origin`` header must equal one entry byte for byte: no suffix, case or port leniency, so
``https://school.example.evil.com`` or ``https://school.example:8443`` never pass for
``https://school.example``. A request without ``Origin`` does not come from a browser page (which
is what the check defends against) and is allowed; ``null`` (sandboxed pages, ``file:``) is
refused unless listed literally.
"""

from __future__ import annotations

import re

_SERIALISED = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[1-9][0-9]{0,4})?$")


def validate_origin(origin: str) -> str:
    """Return ``origin`` if it is a serialised origin (or ``null``).

    Raises:
        ValueError: with a hint of the expected form.
    """
    if origin == "null" or _SERIALISED.match(origin):
        return origin
    raise ValueError(
        f"{origin!r} is not an origin; write it as a browser sends it, e.g. https://school.example"
        " (lower case, no path, no trailing slash, no default port)"
    )


def origin_allowed(header: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a WebSocket upgrade with this ``Origin`` header may proceed.

    An empty allow-list switches the check off (stock Edrys-Lite behaviour).
    """
    if not allowed or header is None:
        return True
    return header in allowed


__all__ = ["origin_allowed", "validate_origin"]
