"""The public API of edrys_relay.client is what __all__ says."""

from __future__ import annotations

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
