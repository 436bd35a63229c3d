"""Our y-webrtc signaling crypto against y-webrtc's own src/crypto.js running in Node.

Runs ``js/webrtc_crypto.mjs`` with the npm packages pinned in package.json (``npm ci`` in
tests/interop). Fails when Node or node_modules is missing, like the other interop tests.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edrys_relay.protocol.anyenc import JsBigInt, encode_any
from edrys_relay.protocol.webrtc_crypto import decrypt, derive_key, encrypt

from .node_agent import require_node_modules

HERE = Path(__file__).parent
SCRIPT = HERE / "js" / "webrtc_crypto.mjs"

CASES: list[tuple[str, str, Any]] = [
    (
        "password",
        "AbCdEfGhIjKlMnOp",
        {"type": "announce", "from": "6c0e0f7a-1d2b-4c3d-8e9f-0a1b2c3d4e5f"},
    ),
    (
        "password",
        "AbCdEfGhIjKlMnOpQrStUvWxYz",
        {
            "to": "b",
            "from": "a",
            "type": "signal",
            "token": 1764115200123.4567,
            "signal": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n" * 40},
        },
    ),
    ("pässwörd", "Raum ü/1", [None, True, False, -7, 0.5, 1e300, "😀", b"\x00\xff", JsBigInt(-2)]),
]


def _run_node(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    require_node_modules()
    if not (HERE / "node_modules" / "y-webrtc").is_dir():
        pytest.fail("npm packages missing: run `npm ci` in tests/interop (scripts/setup does)")
    proc = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


def test_python_and_js_agree_both_directions() -> None:
    iv = bytes(range(100, 112))
    requests: list[dict[str, Any]] = []
    for password, room, value in CASES:
        any_hex = encode_any(value).hex()
        requests.append({"op": "key", "password": password, "room": room})
        requests.append({"op": "encrypt", "password": password, "room": room, "anyHex": any_hex})
        requests.append(
            {
                "op": "encrypt",
                "password": password,
                "room": room,
                "anyHex": any_hex,
                "ivHex": iv.hex(),
            }
        )
        key = derive_key(password, room)
        requests.append(
            {"op": "decrypt", "password": password, "room": room, "b64": encrypt(key, value)}
        )
        requests.append(
            {"op": "decrypt", "password": password + "x", "room": room, "b64": encrypt(key, value)}
        )
    results = iter(_run_node(requests))
    for password, room, value in CASES:
        key = derive_key(password, room)
        any_hex = encode_any(value).hex()
        assert next(results)["keyHex"] == key.hex()
        # JS random IV -> Python decrypts to the same value (byte-identical writeAny)
        assert encode_any(decrypt(key, next(results)["b64"])).hex() == any_hex
        # pinned IV -> identical base64 text
        assert next(results)["b64"] == encrypt(key, value, iv=iv)
        # Python encrypts -> JS decrypts to the same writeAny bytes
        assert next(results)["anyHex"] == any_hex
        # JS with the wrong password refuses it
        assert "error" in next(results)
