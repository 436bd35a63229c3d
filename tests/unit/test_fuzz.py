"""Bounded fuzzing of every decoder (docs/threats.md B6); ``fuzz/run.py`` runs the long version.

Only :class:`ProtocolError` may escape a decoder. The pycrdt target runs in a subprocess with
an address-space limit, because an allocation abort in Yrs cannot be caught (docs/threats.md V3).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from edrys_relay.protocol.errors import ProtocolError
from fuzz import targets
from fuzz.corpus import known_crashers
from fuzz.run import mutated

ROOT = Path(__file__).parent.parent.parent


@pytest.mark.parametrize("name", sorted(targets.IN_PROCESS))
def test_decoder_raises_only_protocol_errors(name: str) -> None:
    target = targets.IN_PROCESS[name]

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(name))
    def check(data: bytes) -> None:
        targets.run(target, data)

    check()


@pytest.mark.parametrize("name", sorted(targets.IN_PROCESS))
def test_seeds_are_accepted(name: str) -> None:
    for seed in targets.seeds(name):
        targets.IN_PROCESS[name](seed)


def test_pycrdt_survives_fuzzing_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fuzz.run", "pycrdt", "--seconds=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("crasher", known_crashers(), ids=lambda c: c.name)
def test_known_crashers_are_rejected_by_the_decoders(crasher) -> None:  # type: ignore[no-untyped-def]
    if crasher.door == "signaling":
        with pytest.raises(ProtocolError):
            targets.signaling_frame(crasher.frame)
    else:
        targets.run(targets.y_websocket_message, crasher.frame)
