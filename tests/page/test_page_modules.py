"""The page's framing and #comm= modules under Node, checked against protocols.md vectors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import ROOT

SCRIPT = Path(__file__).with_name("page_modules.mjs")


@pytest.fixture(scope="module")
def result() -> dict:  # type: ignore[type-arg]
    if not shutil.which("node") or not (ROOT / "web" / "node_modules").is_dir():
        pytest.skip("needs node and web/node_modules (web/build.sh installs them)")
    out = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_small_message_is_one_framed_chunk(result: dict) -> None:  # type: ignore[type-arg]
    header = "0000000000000007" + "0" * 16 + "0000000000000001" + "0000000000000004" * 2
    assert result["small"] == [header + "00000100"]


def test_big_message_is_split_like_the_fork(result: dict) -> None:  # type: ignore[type-arg]
    assert result["chunkSize"] == 15872
    assert result["bigSizes"] == [40 + 15872, 40 + 15872, 40 + 40000 - 2 * 15872]
    # index 1, chunk size 15 872 -> 00 00 00 00 00 00 3e 00 (protocols.md §4.6)
    assert result["bigHeaders"][1] == (
        "0000000000000003" + "0000000000000001" + "0000000000000003"
        "0000000000009c40" + "0000000000003e00"
    )
    assert result["parsed"] == {
        "txOrd": 3,
        "index": 1,
        "length": 3,
        "totalSize": 40000,
        "chunkSize": 15872,
    }
    assert result["reassembled"] is True


def test_one_byte_past_a_chunk(result: dict) -> None:  # type: ignore[type-arg]
    # 15 873 bytes as message 7: a full chunk plus one byte (same vector as the Python codec)
    assert result["edgeHeaders"] == [
        "0000000000000007000000000000000000000000000000020000000000003e010000000000003e00",
        "0000000000000007000000000000000100000000000000020000000000003e010000000000000001",
    ]
    last_two = bytes([15870 % 251, 15871 % 251]).hex()
    assert result["edgeTails"] == [last_two, "01" + bytes([15872 % 251]).hex()]


def test_comm_encoding_matches_edrys(result: dict) -> None:  # type: ignore[type-arg]
    # the example of protocols.md §5.2 (made by Edrys-Lite's npm lz-string)
    assert result["docExample"] == (
        "N4IgtiBcIOoKYCMDOB7AxgazgFxAGhAHcoilIB6cgG3QEMqALFJbSARgCYBmAFhAF8gA"
    )
    assert result["wsShort"] == "ws"
    assert result["webrtcDefault"] is None
    assert result["decodedWs"]["communicationMethod"] == "Websocket"
    assert result["decodedWs"]["websocketUrl"] == "ws://self:1"
    assert result["decodedDoc"] == {
        "communicationMethod": "Websocket",
        "websocketUrl": "ws://localhost:1234",
        "signalingServer": ["ws://self:1"],
        "webrtcConfig": None,
    }
    assert result["autoRoundTrip"] == {
        "communicationMethod": "Auto",
        "websocketUrl": "ws://h:2",
        "signalingServer": ["ws://h:2"],
        "webrtcConfig": {"iceTransportPolicy": "relay"},
    }


def test_routes_give_the_edrys_room_name(result: dict) -> None:  # type: ignore[type-arg]
    assert result["routes"] == ["AbCdEfGhIjKlMnOp", "Abchash1", "AbC1", None]
