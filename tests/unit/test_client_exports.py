"""The public API of edrys_relay.client is what __all__ says."""

from __future__ import annotations

import re
from importlib import metadata

import edrys_relay.client as client


def test_public_api() -> None:
    assert sorted(client.__all__) == [
        "Awareness",
        "Classroom",
        "ClientOptions",
        "Framing",
        "MessageListener",
        "SharedDocument",
        "Transport",
    ]
    for name in client.__all__:
        assert getattr(client, name) is not None


def test_a_plain_install_brings_the_webrtc_transport() -> None:
    """aiortc is a dependency of ``pip install .`` itself, not of an extra (docs/design.md)."""
    requirements = metadata.requires("edrys-relay") or []
    aiortc = [r for r in requirements if re.match(r"aiortc\b", r)]
    assert aiortc, requirements
    assert all("extra ==" not in r for r in aiortc), aiortc
