"""scripts/netns-pytest reports a missing namespace with exit status 77 and a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "netns-pytest"


def test_exit_77_when_unshare_is_not_permitted(tmp_path: Path) -> None:
    fake = tmp_path / "unshare"
    fake.write_text(
        '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    env = dict(
        os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", PYTHON=sys.executable
    )
    env.pop("EDRYS_RELAY_NETNS", None)
    proc = subprocess.run(
        [str(SCRIPT), "--version"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 77
    assert "cannot create a network namespace" in proc.stderr
    assert "Operation not permitted" in proc.stderr
