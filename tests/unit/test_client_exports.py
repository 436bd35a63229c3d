"""The public API of edrys_relay.client is what __all__ says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import edrys_relay.client as client

ROOT = Path(__file__).resolve().parents[2]


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


def _run_without_aiortc(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys; sys.modules['aiortc'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_websocket_client_works_without_the_webrtc_extra() -> None:
    result = _run_without_aiortc("from edrys_relay.client import Classroom; print('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_webrtc_transport_names_the_extra_when_aiortc_is_missing() -> None:
    result = _run_without_aiortc("import edrys_relay.client.webrtc")
    assert result.returncode != 0
    assert "pip install 'edrys-relay[webrtc]'" in result.stderr
