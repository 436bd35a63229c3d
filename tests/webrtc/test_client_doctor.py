"""``edrys-relay doctor`` with its WebRTC check, in a private network namespace (conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import RelayProcess

ROOT = Path(__file__).resolve().parents[2]


def test_doctor_reports_a_working_data_channel(relay_server: RelayProcess) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "edrys_relay", "doctor", f"ws://127.0.0.1:{relay_server.port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "ok    WebRTC data channel: two local peers synced over a data channel" in output, output
    assert "WebRTC mode: works" in output, output
    assert "recommendation: use WebRTC mode" in output, output
    assert result.returncode == (0 if "FAIL" not in output else 1), output
